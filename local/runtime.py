"""The template's Python runtime (`Runtime: python3.12`) on this machine, for `sam build` and the local stack.

`sam build` looks for the runtime's interpreter by name on PATH and stops with `Binary validation
failed for python` when it is missing. A pyenv shim on PATH does not count: it answers
`command not found` unless that version is selected. So an interpreter is taken from PATH only if it
runs and reports the runtime's version, else from pyenv's versions (`$PYENV_ROOT/versions/3.12.*`).

`python -m local.runtime` prints the folder holding it (for `PATH=<folder>:$PATH sam build`), or
says what is missing and exits 1.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from local.template import load_template

PROBE_SECONDS = 10


def template_runtime() -> str:
    """`Globals.Function.Runtime` of template.yaml, e.g. `python3.12`."""
    runtime = str(((load_template().get("Globals") or {}).get("Function") or {}).get("Runtime", ""))
    if not re.fullmatch(r"python3\.\d+", runtime):
        raise ValueError(f"template.yaml's Globals.Function.Runtime is {runtime!r}, not a pythonX.Y runtime")
    return runtime


def _reports(python: str, version: str) -> bool:
    """Whether `python` runs and is Python `version` (e.g. "3.12")."""
    try:
        probe = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=PROBE_SECONDS,
            check=False,
            env={k: v for k, v in os.environ.items() if k != "PYENV_VERSION"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0 and probe.stdout.strip() == version


def _pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def _pyenv_candidates(version: str) -> list[Path]:
    root = _pyenv_root()
    found = []
    for folder in (root / "versions").glob(f"{version}.*"):
        patch = folder.name[len(version) + 1 :]
        if patch.isdigit():  # 3.12.1, not 3.12-dev or 3.12.1t
            found.append((int(patch), folder / "bin" / f"python{version}"))
    return [path for _, path in sorted(found, reverse=True) if path.is_file()]


def find_runtime(runtime: str | None = None) -> Path | None:
    """An interpreter of the runtime (`python3.12`) that really runs: from PATH, else pyenv's newest patch."""
    name = runtime or template_runtime()
    version = name.removeprefix("python")
    on_path = shutil.which(name)
    # A pyenv shim runs the selected version or fails: the versions are looked at below, directly (faster).
    if on_path and Path(on_path).parent != _pyenv_root() / "shims" and _reports(on_path, version):
        return Path(on_path)
    for candidate in _pyenv_candidates(version):
        if _reports(str(candidate), version):
            return candidate
    return None


def missing_message(runtime: str) -> str:
    return (
        f"{runtime} (template.yaml's Runtime) was not found: neither on PATH nor under pyenv ($PYENV_ROOT/versions/"
        f"{runtime.removeprefix('python')}.*). sam build needs it to build the functions and the layer. Install it "
        f"(e.g. `pyenv install {runtime.removeprefix('python')}` or your system's {runtime} package) and run again."
    )


def main(argv: list[str]) -> int:
    runtime = template_runtime()
    found = find_runtime(runtime)
    if found is None:
        print(missing_message(runtime), file=sys.stderr)
        return 1
    print(found.parent if "--bin-dir" in argv else found)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
