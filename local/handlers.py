"""The functions of template.yaml, resolved to handler callables, and reloaded when the code changes.

Every function has an `app.py`, so each is loaded under its own module name. When any `.py` under
`functions/` or `shared/` changes, the cached modules (the functions, `timmy`, `timmy_http`) are
dropped and the next call imports them again: a new cold start, without a restart.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.template import ROOT, TEMPLATE_PATH, load_template, resources

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
WATCHED_DIRS = (ROOT / "functions", ROOT / "shared")
RELOADED_PACKAGES = ("timmy", "timmy_http")
MODULE_PREFIX = "timmy_local_fn_"
_MERGE_PREFIXES = ("_powertools_openapi_merge_", "_powertools_dep_", "_timmy_openapi_")

Handler = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class FunctionSpec:
    """One AWS::Serverless::Function: where its handler lives and how Lambda would run it."""

    logical_id: str
    file: Path
    attribute: str
    timeout_seconds: int
    memory_mb: int
    events: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    reserved_concurrency: int | None = None  # ReservedConcurrentExecutions: the pool's cap

    @property
    def module_name(self) -> str:
        return f"{MODULE_PREFIX}{self.logical_id}"

    @property
    def exists(self) -> bool:
        return self.file.is_file()

    def events_of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: event.get("Properties") or {} for name, event in self.events.items() if event.get("Type") == kind}


def function_specs(template_path: Path = TEMPLATE_PATH) -> dict[str, FunctionSpec]:
    """Every function of the template by logical id; CodeUri + Handler resolved to a file."""
    template = load_template(template_path)
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    specs = {}
    for logical_id, resource in resources("AWS::Serverless::Function", template_path).items():
        props = resource.get("Properties") or {}
        module_path, _, attribute = str(props["Handler"]).rpartition(".")
        code_dir = template_path.parent / str(props.get("CodeUri", "."))
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            file=(code_dir / Path(*module_path.split("."))).with_suffix(".py"),
            attribute=attribute,
            timeout_seconds=int(props.get("Timeout", globals_.get("Timeout", 3))),
            memory_mb=int(props.get("MemorySize", globals_.get("MemorySize", 128))),
            events=dict(props.get("Events") or {}),
            reserved_concurrency=int(props["ReservedConcurrentExecutions"]) if props.get("ReservedConcurrentExecutions") else None,
        )
    return specs


class LambdaContext:
    """What Lambda hands a handler as `context` (the attributes Powertools reads)."""

    def __init__(self, spec: FunctionSpec):
        self.function_name = spec.logical_id
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{spec.logical_id}"
        self.memory_limit_in_mb = spec.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{spec.logical_id}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self._deadline = time.monotonic() + spec.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class HandlerLoader:
    """Handlers by function, loaded on first use and reloaded after a code change (`watch`)."""

    def __init__(self, specs: dict[str, FunctionSpec] | None = None, *, watch: bool = True):
        self.specs = specs if specs is not None else function_specs()
        self.watch = watch
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.RLock()
        self._fingerprint = _code_fingerprint() if watch else None
        self.reloads = 0

    def handler(self, logical_id: str) -> Handler:
        """The function's handler; raises FileNotFoundError when its file does not exist (yet)."""
        with self._lock:
            self._reload_if_changed()
            cached = self._handlers.get(logical_id)
            if cached is not None:
                return cached
            spec = self.specs[logical_id]
            if not spec.exists:
                raise FileNotFoundError(f"{spec.file.relative_to(ROOT)} does not exist (yet)")
            module = _load_module(spec.module_name, spec.file)
            handler: Handler = getattr(module, spec.attribute)
            self._handlers[logical_id] = handler
            return handler

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Call the function as Lambda would: the event and a fresh context."""
        return self.handler(logical_id)(event, LambdaContext(self.specs[logical_id]))

    def _reload_if_changed(self) -> None:
        if not self.watch:
            return
        fingerprint = _code_fingerprint()
        if fingerprint != self._fingerprint:
            self._fingerprint = fingerprint
            self.reload()

    def reload(self) -> None:
        """Forget every loaded function and the shared packages: the next call is a cold start."""
        with self._lock:
            self._handlers.clear()
            for name in list(sys.modules):
                top = name.split(".", 1)[0]
                if top in RELOADED_PACKAGES or name.startswith(MODULE_PREFIX) or name.startswith(_MERGE_PREFIXES):
                    del sys.modules[name]
            importlib.invalidate_caches()
            services = importlib.import_module("timmy_http.services")
            services.reset_services()
            self.reloads += 1


def _load_module(name: str, file: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _python_files() -> Iterator[os.DirEntry[str]]:
    stack = [str(d) for d in WATCHED_DIRS if d.is_dir()]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__" and not entry.name.startswith("."):
                        stack.append(entry.path)
                elif entry.name.endswith(".py"):
                    yield entry


def _code_fingerprint() -> int:
    """A hash of every .py file's path and mtime under functions/ and shared/ (any edit changes it)."""
    return hash(frozenset((entry.path, entry.stat().st_mtime_ns) for entry in _python_files()))
