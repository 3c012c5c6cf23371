"""Identity handler fixtures: the Lambda handlers loaded from their files, a clock the tests move."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from timmy.clock import FixedClock
from timmy.config import get_settings
from timmy_http.services import Services, reset_services

FUNCTIONS = Path(__file__).resolve().parents[3] / "functions"


def load_function(family: str) -> ModuleType:
    """functions/<family>/app.py as a module of its own (every function's module is called `app`)."""
    spec = importlib.util.spec_from_file_location(f"timmy_function_{family}", FUNCTIONS / family / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as Lambda's import does: pydantic resolves annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def handlers() -> dict[str, Callable[[dict[str, Any], Any], dict[str, Any]]]:
    found = {}
    for family in ("identity", "admin", "estimate"):
        if (FUNCTIONS / family / "app.py").exists():
            found[family] = load_function(family).lambda_handler
    return found


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(1_790_000_000.0)


@pytest.fixture
def fixed_services(table_name: str, clock: FixedClock) -> Iterator[Services]:
    """The handlers' services on a fresh table, with the test's clock (a fresh cold start)."""
    get_settings.cache_clear()
    yield reset_services(Services(get_settings(), clock))
    reset_services()
