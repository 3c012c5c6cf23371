"""Powertools' event handler without its package's eager imports (timmy_http.event_handler): no HTTP
function imports the resolvers it never runs (AppSync's asyncio: ~9 ms of each cold start), and the
package still answers every name it exports, for code that imports it the usual way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from local.template import resources

ROOT = Path(__file__).resolve().parents[2]
SHIM = "timmy_http.event_handler"
# (CodeUri, handler module) of every function API Gateway invokes, as template.yaml deploys them
HTTP_FUNCTIONS = sorted(
    (str(function["Properties"]["CodeUri"]).rstrip("/"), str(function["Properties"]["Handler"]).rsplit(".", 1)[0])
    for function in resources("AWS::Serverless::Function").values()
    if any(event["Type"] == "HttpApi" for event in function["Properties"].get("Events", {}).values())
)


def _run(code: str, *path: Path) -> str:
    """What `code` prints in a fresh interpreter with `path` (and the layer) importable."""
    env = {"PYTHONPATH": ":".join(str(p) for p in (*path, ROOT / "shared")), "AWS_DEFAULT_REGION": "us-east-1"}
    env["POWERTOOLS_TRACE_DISABLED"] = "true"
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_the_check_sees_every_http_function() -> None:
    assert len(HTTP_FUNCTIONS) >= 8 and ("functions/sessions", "app") in HTTP_FUNCTIONS


@pytest.mark.parametrize(("code_uri", "handler"), HTTP_FUNCTIONS)
def test_no_http_function_imports_the_resolvers_it_never_runs(code_uri: str, handler: str) -> None:
    loaded = _run(
        f"import sys, {handler}; print(sorted(m for m in sys.modules if m == 'asyncio' or m.startswith('aws_lambda_powertools.event_handler.appsync')))",
        ROOT / code_uri,
    )
    assert loaded == "[]"


def test_the_package_still_exports_every_name_and_runs_its_init_when_asked() -> None:
    printed = _run(
        "import sys\n"
        f"import {SHIM} as shim\n"
        "from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types\n"
        "from aws_lambda_powertools.event_handler import api_gateway\n"
        "assert APIGatewayHttpResolver is api_gateway.APIGatewayHttpResolver is shim.APIGatewayHttpResolver\n"
        "assert Response is api_gateway.Response and content_types.APPLICATION_JSON == 'application/json'\n"
        "print('asyncio' in sys.modules)\n"
        "from aws_lambda_powertools.event_handler import AppSyncResolver, Depends\n"
        "import aws_lambda_powertools.event_handler as package\n"
        "assert 'AppSyncResolver' in package.__all__ and package.Response is Response\n"
        "print('asyncio' in sys.modules)\n"
    )
    assert printed.splitlines() == ["False", "True"]


def test_a_package_imported_before_the_shim_is_left_as_it_is() -> None:
    printed = _run(
        "import aws_lambda_powertools.event_handler as package, sys\n"
        f"import {SHIM}\n"
        "print(sys.modules['aws_lambda_powertools.event_handler'] is package, 'asyncio' in sys.modules)\n"
    )
    assert printed == "True True"


def test_the_functions_and_the_glue_take_the_event_handler_from_the_shim() -> None:
    sources = [*sorted((ROOT / "functions").glob("*/*.py")), *sorted((ROOT / "shared" / "timmy_http").glob("*.py"))]
    offenders = set()
    for source in sources:
        if source.name == "event_handler.py":
            continue
        for node in ast.parse(source.read_text()).body:  # module level: what a cold start imports
            module = node.module if isinstance(node, ast.ImportFrom) else None
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [module or ""]
            if any(name.startswith("aws_lambda_powertools.event_handler") for name in names):
                offenders.add(source.relative_to(ROOT).as_posix())
    assert offenders == set()
