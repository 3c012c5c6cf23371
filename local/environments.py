"""Execution environments, as Lambda has them: every invocation runs in its own OS process.

A function has a pool of environments. An environment is a `python -m local.environment` process
that imports the function once (its cold start) and then serves one event at a time, warm. The pool
grows on demand up to a cap (the function's `ReservedConcurrentExecutions`, else
`TIMMY_LOCAL_CONCURRENCY`), and environments idle longer than `TIMMY_LOCAL_IDLE_SECONDS` are
retired. Cold starts run at most one per core at once (`TIMMY_LOCAL_COLD_STARTS`), across functions, so
each init is timed as if it had its own CPU, as in Lambda. An event that finds every environment busy at the cap waits up to
`TIMMY_LOCAL_THROTTLE_SECONDS`, then is throttled (`Throttled`). An invocation past the function's
`Timeout` is killed with its environment (`InvocationTimeout`). A code change under functions/ or
shared/ (checked by a watcher thread, not per request) retires every warm environment.

Parent and environment talk over a socket pair, one JSON line each way per event; the environment's
stdout and stderr are the parent's, so the handlers' logs reach the `make run` console.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from local.handlers import FunctionSpec, _code_fingerprint, function_specs
from local.template import ROOT

CONCURRENCY_DEFAULT = 4
THROTTLE_SECONDS_DEFAULT = 10.0
IDLE_SECONDS_DEFAULT = 300.0
INIT_SECONDS_MIN = 10.0  # Lambda's init phase has its own 10 s limit; a loaded machine needs it
WATCH_INTERVAL_SECONDS = 0.5
DELAY_FILE_VARIABLE = "TIMMY_LOCAL_DELAY_FILE"  # test only: seconds each invocation (or one, see _delay_seconds) sleeps first
WORKER_MODULE = "local.environment"


class Throttled(Exception):
    """Every environment of the function stayed busy at its cap for the whole wait."""


class InvocationTimeout(Exception):
    """The invocation ran past the function's Timeout; its environment was killed."""


class FunctionError(Exception):
    """The handler raised (the environment stays warm), or its environment died."""


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def _cold_start_slots_default() -> int:
    """Cold starts at once, over every function: one per core. In Lambda each environment has its own
    CPU; here 32 imports at once on 2 cores take 16 times as long each and overrun the init limit."""
    return max(2, os.cpu_count() or 2)


def choose_python() -> tuple[str, str]:
    """The template's runtime (python3.12) when the venv is built on it, else the venv's Python; and a
    sentence saying which, for the start-up banner. Another interpreter cannot use the venv: its
    native wheels (pydantic-core, coincurve) are built for the venv's version."""
    from local.runtime import find_runtime, template_runtime

    wanted = template_runtime()
    current = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if current == wanted:
        return sys.executable, f"environments run on {wanted} (the template's runtime)"
    runtime = find_runtime(wanted)
    if runtime is None:
        return (
            sys.executable,
            f"{wanted} (the template's runtime) is not on PATH nor under pyenv: environments run on {current}, the venv's Python",
        )
    return sys.executable, (
        f"{wanted} (the template's runtime) is at {runtime}, but the venv is built on {current} (its native wheels load on that"
        f" version only): environments run on {current}; a venv made with {wanted} runs them on the template's runtime"
    )


def _pythonpath(python: str, site_packages: str | None = None) -> str:
    parts = [str(ROOT), str(ROOT / "shared")]
    if python != sys.executable and site_packages:
        parts.append(site_packages)
    return os.pathsep.join(parts)


class Environment:
    """One process serving one function, one event at a time."""

    def __init__(self, spec: FunctionSpec, python: str, generation: int):
        import sysconfig

        self.spec, self.generation = spec, generation
        self.last_used = time.monotonic()
        parent, child = socket.socketpair()
        description = json.dumps(
            {
                "logical_id": spec.logical_id,
                "file": str(spec.file),
                "attribute": spec.attribute,
                "timeout_seconds": spec.timeout_seconds,
                "memory_mb": spec.memory_mb,
            }
        )
        env = {**os.environ, "PYTHONPATH": _pythonpath(python, sysconfig.get_paths()["purelib"]), "PYTHONUNBUFFERED": "1"}
        env["AWS_LAMBDA_FUNCTION_NAME"] = spec.logical_id
        env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = str(spec.memory_mb)
        env["AWS_LAMBDA_FUNCTION_TIMEOUT"] = str(spec.timeout_seconds)
        try:
            self.process = subprocess.Popen(
                [python, "-m", WORKER_MODULE, str(child.fileno()), description, f"--owner={os.getpid()}"],
                pass_fds=(child.fileno(),),
                cwd=ROOT,
                env=env,
            )
        finally:
            child.close()
        self.sock = parent
        self.reader = parent.makefile("rb")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self) -> float:
        """Wait for the cold start (the import); its duration in ms. Raises what the import raised."""
        self.sock.settimeout(max(INIT_SECONDS_MIN, float(self.spec.timeout_seconds)))
        try:
            message = self._receive()
        except TimeoutError:
            self.kill()
            raise InvocationTimeout(f"{self.spec.logical_id} did not finish its cold start in time") from None
        if not message.get("ready"):
            self.kill()
            if message.get("error") == "FileNotFoundError":
                raise FileNotFoundError(message.get("message", ""))
            raise FunctionError(f"{self.spec.logical_id} failed its cold start: {message.get('error')}: {message.get('message')}")
        return float(message.get("init_ms", 0))

    def invoke(self, event: Any) -> Any:
        self.sock.settimeout(float(self.spec.timeout_seconds))
        try:
            self.sock.sendall(json.dumps({"event": event}).encode() + b"\n")
            message = self._receive()
        except TimeoutError:
            self.kill()
            raise InvocationTimeout(f"{self.spec.logical_id} timed out after {self.spec.timeout_seconds} s") from None
        finally:
            self.last_used = time.monotonic()
        if "error" in message:
            raise FunctionError(f"{self.spec.logical_id} failed: {message['error']}: {message.get('message', '')}")
        return message.get("result")

    def _receive(self) -> dict[str, Any]:
        try:
            line = self.reader.readline()
        except (ConnectionError, OSError) as error:
            if isinstance(error, TimeoutError):
                raise
            line = b""
        if not line:
            self.kill()
            raise FunctionError(f"the environment of {self.spec.logical_id} exited (code {self.process.poll()})")
        decoded: dict[str, Any] = json.loads(line)
        return decoded

    def kill(self) -> None:
        if self.alive:
            self.process.kill()
            self.process.wait()
        self.close()

    def retire(self) -> None:
        """Close the socket (the environment exits on EOF), then make sure it did."""
        self.close()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        for part in (self.reader, self.sock):
            with contextlib.suppress(OSError):
                part.close()
        if not self.alive:
            self.process.wait()


class FunctionPool:
    """The environments of one function."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        cap: int,
        python: str,
        throttle_seconds: float,
        idle_seconds: float,
        cold_start_slots: threading.Semaphore | None = None,
    ):
        self.spec, self.cap, self.python = spec, cap, python
        self.cold_start_slots = cold_start_slots or threading.Semaphore(_cold_start_slots_default())
        self.throttle_seconds, self.idle_seconds = throttle_seconds, idle_seconds
        self.generation = 0
        self.idle: list[Environment] = []  # most recently used last
        self.busy: set[Environment] = set()  # serving an event now
        self.total = 0  # alive or starting
        self.cold_starts = 0
        self.last_init_ms = 0.0
        self._cond = threading.Condition()
        self._closed = False

    def invoke(self, event: Any) -> Any:
        environment = self._checkout()
        healthy = False
        try:
            result = environment.invoke(event)
            healthy = True
            return result
        except FunctionError:
            healthy = environment.alive
            raise
        finally:
            self._checkin(environment, healthy)

    def _checkout(self) -> Environment:
        deadline = time.monotonic() + self.throttle_seconds
        with self._cond:
            while True:
                if self._closed:
                    raise FunctionError("the local stack is stopping")
                while self.idle:
                    environment = self.idle.pop()
                    if environment.alive and environment.generation == self.generation:
                        self.busy.add(environment)
                        return environment
                    self.total -= 1
                    environment.retire()
                if self.total < self.cap:
                    self.total += 1
                    generation = self.generation
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Throttled(f"{self.spec.logical_id} has {self.cap} environments, all busy")
                self._cond.wait(remaining)
        try:
            with self.cold_start_slots:  # the init limit then times this init alone, not the queue of them
                environment = Environment(self.spec, self.python, generation)
                self.last_init_ms = environment.wait_ready()
            self.cold_starts += 1
            with self._cond:
                if self._closed:  # stopped during the cold start
                    environment.kill()
                    raise FunctionError("the local stack is stopping")
                self.busy.add(environment)
            return environment
        except BaseException:
            with self._cond:
                self.total -= 1
                self._cond.notify()
            raise

    def _checkin(self, environment: Environment, healthy: bool) -> None:
        with self._cond:
            self.busy.discard(environment)
            if healthy and not self._closed and environment.alive and environment.generation == self.generation:
                self.idle.append(environment)
                self._cond.notify()
                return
            self.total -= 1
            self._cond.notify()
        environment.kill()

    def retire_idle(self, older_than: float | None = None) -> int:
        """Retire idle environments (all, or those unused for `older_than` seconds)."""
        now = time.monotonic()
        with self._cond:
            keep = [e for e in self.idle if older_than is not None and now - e.last_used < older_than]
            gone = [e for e in self.idle if e not in keep]
            self.idle = keep
            self.total -= len(gone)
            self._cond.notify_all()
        for environment in gone:
            environment.retire()
        return len(gone)

    def new_generation(self) -> None:
        """After a code change: busy environments retire when they finish, idle ones now."""
        with self._cond:
            self.generation += 1
        self.retire_idle()

    def close(self) -> None:
        """Stop: idle environments retire, busy ones are killed (their events fail, as a Lambda
        environment shut down mid-invocation), so no process outlives the stack."""
        with self._cond:
            self._closed = True
            busy = list(self.busy)
        self.retire_idle()
        for environment in busy:
            if environment.alive:
                environment.process.kill()  # its invoking thread sees the socket close and cleans up

    @property
    def pids(self) -> list[int]:
        with self._cond:
            return [e.process.pid for e in self.idle]


class ExecutionEnvironments:
    """Every function's pool; `invoke(logical_id, event)` as HandlerLoader has it. `stop()` ends all."""

    def __init__(
        self,
        specs: Mapping[str, FunctionSpec] | None = None,
        *,
        watch: bool = True,
        python: str | None = None,
        concurrency: int | None = None,
        throttle_seconds: float | None = None,
        idle_seconds: float | None = None,
    ):
        self.specs = dict(specs) if specs is not None else function_specs()
        self.python = python or sys.executable
        default_cap = concurrency or int(os.environ.get("TIMMY_LOCAL_CONCURRENCY") or CONCURRENCY_DEFAULT)
        throttle = (
            throttle_seconds if throttle_seconds is not None else _env_float("TIMMY_LOCAL_THROTTLE_SECONDS", THROTTLE_SECONDS_DEFAULT)
        )
        self.idle_seconds = idle_seconds if idle_seconds is not None else _env_float("TIMMY_LOCAL_IDLE_SECONDS", IDLE_SECONDS_DEFAULT)
        self.cold_starts_at_once = int(os.environ.get("TIMMY_LOCAL_COLD_STARTS") or _cold_start_slots_default())
        slots = threading.Semaphore(self.cold_starts_at_once)
        self.pools = {
            logical_id: FunctionPool(
                spec,
                cap=spec.reserved_concurrency or default_cap,
                python=self.python,
                throttle_seconds=throttle,
                idle_seconds=self.idle_seconds,
                cold_start_slots=slots,
            )
            for logical_id, spec in self.specs.items()
        }
        self.reloads = 0
        self._stop = threading.Event()
        self._fingerprint = _code_fingerprint() if watch else None
        self._thread = threading.Thread(target=self._housekeeping, args=(watch,), name="environments", daemon=True)
        self._thread.start()

    def invoke(self, logical_id: str, event: Any) -> Any:
        spec = self.specs[logical_id]
        if not spec.exists:
            raise FileNotFoundError(f"{spec.file.relative_to(ROOT)} does not exist (yet)")
        return self.pools[logical_id].invoke(event)

    def reload(self) -> None:
        """Retire every warm environment: the next event of each function is a cold start."""
        for pool in self.pools.values():
            pool.new_generation()
        self.reloads += 1

    def _housekeeping(self, watch: bool) -> None:
        last_reap = time.monotonic()
        while not self._stop.wait(WATCH_INTERVAL_SECONDS):
            if watch:
                fingerprint = _code_fingerprint()
                if fingerprint != self._fingerprint:
                    self._fingerprint = fingerprint
                    self.reload()
            if time.monotonic() - last_reap >= min(5.0, self.idle_seconds):
                last_reap = time.monotonic()
                for pool in self.pools.values():
                    pool.retire_idle(older_than=self.idle_seconds)

    def pids(self) -> list[int]:
        return [pid for pool in self.pools.values() for pid in pool.pids]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for pool in self.pools.values():
            pool.close()


def _delay_seconds(path: str, logical_id: str) -> float:
    """How long this invocation sleeps first (TIMMY_LOCAL_DELAY_FILE, tests only). A number in the file
    delays every invocation of every function while the file exists. A JSON object `{"function":
    <logical id>, "seconds": n}` delays one invocation of that function: the environment that claims
    the file (renames it away, which only one process can do) sleeps, and the file is gone."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return 0.0
    if not text.lstrip().startswith("{"):
        return float(text or 0)
    try:
        wanted = json.loads(text)
    except ValueError:
        return 0.0  # being written: not yet a delay
    if wanted.get("function") != logical_id:
        return 0.0
    try:
        os.rename(path, f"{path}.claimed-{os.getpid()}")
    except FileNotFoundError:
        return 0.0  # another invocation claimed it first
    return float(wanted.get("seconds", 0))


def _serve(fd: int, description: dict[str, Any]) -> int:
    """The environment's side: import the handler, say ready, then one event per line until EOF."""
    import traceback

    from local.handlers import HandlerLoader, LambdaContext

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    sock = socket.socket(fileno=fd)
    reader, writer = sock.makefile("rb"), sock.makefile("wb")
    spec = FunctionSpec(
        logical_id=description["logical_id"],
        file=Path(description["file"]),
        attribute=description["attribute"],
        timeout_seconds=int(description["timeout_seconds"]),
        memory_mb=int(description["memory_mb"]),
    )

    def send(message: dict[str, Any]) -> None:
        writer.write(json.dumps(message, default=str).encode() + b"\n")
        writer.flush()

    started = time.perf_counter()
    try:
        handler = HandlerLoader({spec.logical_id: spec}, watch=False).handler(spec.logical_id)
    except BaseException as error:
        traceback.print_exc(file=sys.stderr)
        send({"ready": False, "error": type(error).__name__, "message": str(error)})
        return 1
    send({"ready": True, "init_ms": (time.perf_counter() - started) * 1000})
    delay_file = os.environ.get(DELAY_FILE_VARIABLE)
    try:
        for line in reader:
            event = json.loads(line)["event"]
            if delay_file:
                time.sleep(_delay_seconds(delay_file, spec.logical_id))
            try:
                result = {"result": handler(event, LambdaContext(spec))}
            except Exception as error:
                traceback.print_exc(file=sys.stderr)
                result = {"error": type(error).__name__, "message": str(error)}
            send(result)
    except (ConnectionResetError, BrokenPipeError):
        pass  # the parent is gone (it stopped, or killed this environment's socket): the end, not an error
    return 0
