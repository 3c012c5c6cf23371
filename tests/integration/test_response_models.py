"""Every route answers through a response model the spec documents, and the functions' models do
not clash: the merged spec keeps one schema per name, so two functions naming different answers
alike would document one route with the other's answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.api_client import ApiClient

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
# The spec itself answers the OpenAPI document (its own schema is the OpenAPI standard's).
MODEL_FREE = {("get", "/api/openapi.json")}


def _function_schemas() -> dict[str, dict[str, Any]]:
    from functions.meta.app import THIS_FILE, _function_schema

    schemas = {}
    for file in sorted(FUNCTIONS.glob("*/app.py")):
        schema = _function_schema(file) if file.resolve() != THIS_FILE else None
        if schema is not None:
            schemas[file.parent.name] = schema
    return schemas


def test_every_route_documents_its_success_answer_with_a_model(api: ApiClient) -> None:
    spec = api.get("/api/openapi.json").json
    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if (method, path) in MODEL_FREE or path == "/api/docs":
                continue
            successes = {status: answer for status, answer in operation["responses"].items() if status.startswith("2")}
            if not successes or any("schema" not in answer.get("content", {}).get("application/json", {}) for answer in successes.values()):
                missing.append(f"{method.upper()} {path}")
    assert missing == []


def test_no_two_functions_name_different_models_alike() -> None:
    seen: dict[str, tuple[str, Any]] = {}
    clashes = []
    for function, schema in _function_schemas().items():
        for name, model in schema.get("components", {}).get("schemas", {}).items():
            if name in seen and seen[name][1] != model:
                clashes.append(f"{name}: {seen[name][0]} and {function}")
            seen.setdefault(name, (function, model))
    assert seen and clashes == []
