"""DynamoDB Local: the AWS emulator jar from the pinned npm package, run with the machine's Java."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from local.template import ROOT, table_definition, ttl_attribute

EMULATOR_DIR = ROOT / "node_modules" / "amplify-dynamodb-simulator" / "emulator"
STARTUP_SECONDS_MAX = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DynamoDBLocal:
    """One DynamoDB Local process; in memory, or persisted under `data_dir` (-sharedDb)."""

    def __init__(self, port: int | None = None, data_dir: Path | None = None):
        self.port = port or free_port()
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> DynamoDBLocal:
        jar = EMULATOR_DIR / "DynamoDBLocal.jar"
        if not jar.exists():
            raise RuntimeError(f"{jar} is missing: run `make install` (npm ci installs amplify-dynamodb-simulator)")
        storage = ["-inMemory"]
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            storage = ["-sharedDb", "-dbPath", str(self.data_dir)]
        command = ["java", f"-Djava.library.path={EMULATOR_DIR / 'DynamoDBLocal_lib'}", "-jar", str(jar), *storage, "-port", str(self.port)]
        self.process = subprocess.Popen(
            command, cwd=EMULATOR_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        client = self.client()
        deadline = time.monotonic() + STARTUP_SECONDS_MAX
        while True:
            try:
                client.list_tables()
                return
            except Exception:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"DynamoDB Local exited with {self.process.returncode}") from None
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("DynamoDB Local did not answer in time") from None
                time.sleep(0.1)

    def client(self) -> Any:
        return boto3.client(
            "dynamodb",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=64, parameter_validation=False),
        )

    def create_table(self, table_name: str) -> None:
        """Create `table_name` from the template's table resource, if it does not exist yet."""
        client = self.client()
        if table_name in client.list_tables()["TableNames"]:
            return
        client.create_table(TableName=table_name, **table_definition())
        attribute = ttl_attribute()
        if attribute:
            client.update_time_to_live(TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute})

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
