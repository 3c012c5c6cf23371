"""Powertools' event handler for every HTTP function, without its package's eager imports.

`aws_lambda_powertools.event_handler/__init__.py` imports every resolver Powertools has (AppSync,
Bedrock, VPC Lattice…), and the AppSync one imports asyncio: ~9 ms of each HTTP cold start
(bench/coldstart.py) for code no function of ours runs. Powertools offers no lighter entry point,
and importing a submodule (`event_handler.api_gateway`) runs the package's `__init__` first.

So, before anything else imports it, the package is put in `sys.modules` with its `__init__` not
yet run: its submodules import as usual, and a name read from the package itself is, in order, a
submodule (`content_types`), a name `api_gateway` defines (the `__init__` re-exports
`APIGatewayHttpResolver`, `Response`… from there), or anything else, which runs the real
`__init__` then (`AppSyncResolver` still imports). Powertools' own modules read `Response` and
`content_types` from the package. When the package was imported before this module (a test that
imports Powertools first), nothing changes. tests/unit/test_event_handler_imports.py proves both,
and that no handler imports asyncio.

Every function and `timmy_http` module takes these names from here, never from the package.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

PACKAGE = "aws_lambda_powertools.event_handler"


def _import_without_init() -> None:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:  # pragma: no cover
        raise ImportError(f"{PACKAGE} is not an importable package")
    loader = spec.loader
    package = importlib.util.module_from_spec(spec)

    def package_getattr(name: str) -> Any:
        if importlib.util.find_spec(f"{PACKAGE}.{name}") is not None:
            return importlib.import_module(f"{PACKAGE}.{name}")
        api_gateway = importlib.import_module(f"{PACKAGE}.api_gateway")
        if not name.startswith("__") and hasattr(api_gateway, name):
            return getattr(api_gateway, name)
        delattr(package, "__getattr__")  # the real __init__ defines the rest
        loader.exec_module(package)
        return getattr(package, name)

    setattr(package, "__getattr__", package_getattr)  # noqa: B010 (PEP 562: a module's __getattr__)
    sys.modules[PACKAGE] = package


if PACKAGE not in sys.modules:
    _import_without_init()

from aws_lambda_powertools.event_handler import content_types  # noqa: E402
from aws_lambda_powertools.event_handler.api_gateway import APIGatewayHttpResolver, Response  # noqa: E402
from aws_lambda_powertools.event_handler.exceptions import NotFoundError  # noqa: E402
from aws_lambda_powertools.event_handler.openapi.exceptions import (  # noqa: E402
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query  # noqa: E402
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse  # noqa: E402

__all__ = [
    "APIGatewayHttpResolver",
    "Body",
    "NotFoundError",
    "OpenAPIResponse",
    "Path",
    "Query",
    "RequestUnsupportedContentType",
    "RequestValidationError",
    "Response",
    "content_types",
]
