"""The README's configuration table lists every field of Settings, with its default."""

from __future__ import annotations

import re

from local.template import ROOT
from timmy.config import Settings


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| (.*?) \|", readme, flags=re.MULTILINE))
    missing = [name.upper() for name in Settings.model_fields if name.upper() not in rows]
    assert not missing, f"add these to README.md's configuration table: {missing}"
    for name, field in Settings.model_fields.items():
        default = "(empty)" if field.default == "" else f"`{field.default}`"
        assert rows[name.upper()] == default, f"README.md gives {name.upper()} the default {rows[name.upper()]}, the code {default}"
