"""Every sample event in events/ (what `sam local invoke -e` takes) answers without a 5xx.

Events are grouped by function family: `events/<family>/*.json` belongs to `functions/<family>/app.py`.
Families whose app.py does not exist yet are skipped by name, so the test goes live when they land.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from local.handlers import function_specs
from local.template import ROOT

EVENTS_DIR = ROOT / "events"
EVENT_FILES = sorted(EVENTS_DIR.glob("*/*.json"))
FUNCTION_BY_FAMILY = {spec.file.parent.name: spec for spec in function_specs().values()}


def test_every_function_has_a_sample_event() -> None:
    families = {path.parent.name for path in EVENT_FILES}
    assert families == set(FUNCTION_BY_FAMILY), "events/<family>/ must exist for exactly the functions of template.yaml"


def test_every_http_route_has_a_sample_event() -> None:
    route_keys = {
        json.loads(p.read_text())["routeKey"]
        for p in EVENT_FILES
        if p.parent.name in FUNCTION_BY_FAMILY and "routeKey" in json.loads(p.read_text())
    }
    for spec in FUNCTION_BY_FAMILY.values():
        for props in spec.events_of_type("HttpApi").values():
            key = "$default" if props["Path"] == "$default" else f"{props['Method'].upper()} {props['Path']}"
            assert key in route_keys, f"no sample event for {key}"


@pytest.mark.parametrize("path", EVENT_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_sample_event_answers_without_5xx(path: Path, stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = FUNCTION_BY_FAMILY[path.parent.name]
    if not spec.exists:
        pytest.skip(f"{spec.file.relative_to(ROOT)} does not exist yet")
    monkeypatch.setenv("ADMIN_API_KEY", "local-admin-key")  # the key the sample events carry (make run's default)
    event = json.loads(path.read_text())
    result = stack.loader.invoke(spec.logical_id, event)
    if "routeKey" in event:
        assert result["statusCode"] < 500, result
        if result["statusCode"] >= 400:
            assert set(json.loads(result["body"])["error"]) >= {"code", "message"}
    elif "Records" in event:
        assert result == {"batchItemFailures": []}
