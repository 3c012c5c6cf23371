"""The suite's own layout: pytest's default import mode keys a test module by its file name.

Two test files with one name in different folders (no ``__init__.py`` in them) stop collection
with "import file mismatch" on a clean clone, as CI once did.
"""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_module_names_are_unique() -> None:
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []
