"""Health, the OpenAPI spec of every function and its Swagger UI, and the `$default` fallback.

The spec is Powertools' merge of each function's resolver (this function's CodeUri is the whole
`functions/` folder, so every `app.py` is beside it in the package), built on the first request
that needs it: loading every function at import would make this cold start theirs combined. Any
route API Gateway sends here by `$default` is unknown: 404, or 405 when the spec has the path with
other methods.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from timmy.ports.queue import Queue
from timmy_http.app import create_app, lambda_handler_for
from timmy_http.errors import error_response
from timmy_http.event_handler import APIGatewayHttpResolver, Response, content_types
from timmy_http.observability import logger
from timmy_http.openapi import finish_spec
from timmy_http.services import services

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent
THIS_FILE = Path(__file__).resolve()
DOCS_PATH = "/api/docs"
SPEC_MODULE_PREFIX = "_timmy_openapi_"  # other functions' app.py, loaded to read their routes
_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class KnownRoutes:
    """The methods the merged spec knows for a concrete path (for the fallback's 405)."""

    def methods_for(self, path: str) -> set[str]:
        methods: set[str] = set()
        for template, operations in openapi_spec().get("paths", {}).items():
            if _path_pattern(template).fullmatch(path):
                methods.update(m.upper() for m in operations if m in _HTTP_METHODS)
        return methods


app = create_app(known_routes=KnownRoutes())


class Check(BaseModel):
    ok: bool
    status: str | None = None
    error: str | None = None


class Health(BaseModel):
    status: str = Field(description="ok, or degraded (then the answer is a 503 in the error shape)")
    version: str
    checks: dict[str, Check]


@app.get(
    "/api/health",
    summary="Liveness, version, and whether the table and the queues answer",
    responses={
        200: {"description": "Everything answers", "content": {"application/json": {"model": Health}}},
        503: {"description": "A dependency does not answer"},
    },
)
def health() -> Any:
    settings = services().settings
    checks = {
        "table": _check_table(),
        "settlement_queue": _check_queue(services().settlement_queue),
        "work_queue": _check_queue(services().work_queue),
    }
    healthy = all(check["ok"] for check in checks.values())
    if healthy:
        return Response(200, content_types.APPLICATION_JSON, {"status": "ok", "version": settings.version, "checks": checks})
    failing = ", ".join(name for name, check in checks.items() if not check["ok"])
    return error_response(
        503, "dependency_unavailable", f"not answering: {failing}", status="degraded", version=settings.version, checks=checks
    )


@app.get("/api/openapi.json", summary="This OpenAPI document: every route of every function")
def openapi_json() -> Any:
    return Response(200, content_types.APPLICATION_JSON, openapi_spec())


@app.get(DOCS_PATH, include_in_schema=False)
def docs() -> Any:
    """Swagger UI (Powertools' page and bundled assets: no CDN) around the finished spec."""
    from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

    assets = Path(generate_swagger_html.__code__.co_filename).parent
    spec = json.dumps(openapi_spec()).replace("</", "<\\/")
    page = generate_swagger_html(
        spec, (assets / "swagger-ui-bundle.min.js").read_text(), (assets / "swagger-ui.min.css").read_text(), "", None, False
    )
    return Response(200, content_types.TEXT_HTML, page)


lambda_handler = lambda_handler_for(app)


@cache
def openapi_spec() -> dict[str, Any]:
    """The merged spec of this function and every other function's `app.py` (built once per cold start)."""
    app.configure_openapi_merge(
        path=str(FUNCTIONS_DIR), pattern="app.py", recursive=True, title="Timmy", version=services().settings.version
    )
    merge = app._openapi_merge  # Powertools keeps the configured merge here; add_schema is its API
    merge.add_schema(app.get_openapi_schema(title="Timmy").model_dump(by_alias=True, exclude_none=True))
    merge.add_schema(
        {"paths": {DOCS_PATH: {"get": {"summary": "Swagger UI of this spec", "responses": {"200": {"description": "An HTML page"}}}}}}
    )
    # Discovery finds `app = APIGatewayHttpResolver(...)`; ours come from create_app(), so load them
    # here, one by one: a function whose spec cannot be built is logged and left out, never a 500.
    for file in sorted(FUNCTIONS_DIR.glob("*/app.py")):
        if file.resolve() != THIS_FILE:
            schema = _function_schema(file)
            if schema is not None:
                merge.add_schema(schema)
    return finish_spec(app.get_openapi_merge_schema())


def _function_schema(file: Path) -> dict[str, Any] | None:
    from aws_lambda_powertools.event_handler.openapi.models import OpenAPI  # the spec route only: ~70 ms of import

    try:
        module = _load(f"{SPEC_MODULE_PREFIX}{file.parent.name}", file)
        resolver = getattr(module, "app", None)
        if not isinstance(resolver, APIGatewayHttpResolver):
            return None  # a queue or schedule consumer: no routes
        schema = resolver.get_openapi_schema(title="Timmy").model_dump(by_alias=True, exclude_none=True)
        OpenAPI(**{**schema, "openapi": "3.1.0"}).model_dump_json(by_alias=True, exclude_none=True)  # it must serialise
        return schema
    except Exception:
        logger.exception("left a function out of the OpenAPI spec", extra={"file": str(file.relative_to(FUNCTIONS_DIR))})
        return None


def _load(name: str, file: Path) -> Any:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {file}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


def _check_table() -> dict[str, Any]:
    try:
        status = services().store.describe()
    except Exception as error:
        return {"ok": False, "error": type(error).__name__}
    return {"ok": status == "ACTIVE", "status": status}


def _check_queue(queue: Queue) -> dict[str, Any]:
    if not queue.configured:
        return {"ok": False, "error": "not configured"}
    try:
        queue.ping()
    except Exception as error:
        return {"ok": False, "error": type(error).__name__}
    return {"ok": True}


@cache
def _path_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile(
        "".join(("[^/]+" if p.startswith("{") and not p.endswith("+}") else ".+") if p.startswith("{") else re.escape(p) for p in parts)
    )
