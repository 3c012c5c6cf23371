"""The deploy path: `make build` (sam build) from a clean copy of the repository (HEAD, as a fresh
clone has it) finds the template's runtime and builds every function and the arm64 layer.

Skipped outside CI only when the machine has no python3.12 at all, or no `.venv-sam` yet (`make
install` makes it); in CI either fails."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from local.handlers import function_specs
from local.runtime import find_runtime, missing_message, template_runtime
from local.template import ROOT, resources

BUILD_SECONDS_MAX = 150  # ~30 s here (the layer's arm64 wheels come from PyPI); the bound stops a hang
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI must test the deploy build)")
    pytest.skip(reason)


def clean_copy(into: Path) -> Path:
    """HEAD's tree, nothing uncommitted or ignored, with the project's venvs linked in."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD"], capture_output=True, check=True, timeout=60)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    for venv in (".venv", ".venv-sam"):
        (into / venv).symlink_to((ROOT / venv).resolve(), target_is_directory=True)
    return into


@pytest.mark.slow
def test_make_build_works_from_a_clean_copy(tmp_path: Path) -> None:
    runtime = template_runtime()
    if find_runtime(runtime) is None:
        _unavailable(missing_message(runtime))
    if not (ROOT / ".venv-sam" / "bin" / "sam").exists():
        _unavailable("no SAM CLI in .venv-sam: `make install` makes it")
    if not (ROOT / ".git").exists():
        _unavailable("not a git checkout: no HEAD to copy")
    copy = clean_copy(tmp_path / "timmy")
    # The venvs are the project's, already installed: make must not try to remake them.
    stamps = ["-o", ".venv/.deps-installed", "-o", ".venv-sam/.sam-installed"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYENV_VERSION", "PYTHONPATH", "MAKEFLAGS", "MAKELEVEL")}
    started = time.monotonic()
    result = subprocess.run(
        ["make", *stamps, "build"], cwd=copy, env=env, capture_output=True, text=True, timeout=BUILD_SECONDS_MAX, check=False
    )
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Build Succeeded" in output
    build = copy / ".aws-sam" / "build"
    assert (build / "template.yaml").is_file()
    functions = resources("AWS::Serverless::Function")
    for logical_id, spec in function_specs().items():
        code_uri = ROOT / str(functions[logical_id]["Properties"].get("CodeUri", "."))
        handler = build / logical_id / spec.file.relative_to(code_uri)
        assert handler.is_file(), f"{logical_id}: {handler} was not built"
    layer = build / "SharedLayer" / "python"
    assert (layer / "timmy").is_dir() and (layer / "timmy_http").is_dir()
    native = list((layer / "pydantic_core").glob("_pydantic_core.cpython-312-*.so"))
    assert [so.name for so in native] == ["_pydantic_core.cpython-312-aarch64-linux-gnu.so"]  # arm64, the template's architecture
    # Every module has its bytecode for the template's runtime beside it, used without a look at the
    # source's timestamp (flags 0b01: hash-based, unchecked): Lambda's /opt is read-only, a missing
    # .pyc would be compiled again on every cold start (shared/Makefile).
    tag = "cpython-" + runtime.removeprefix("python").replace(".", "")  # cpython-312
    sources = [p for p in layer.rglob("*.py") if "__pycache__" not in p.parts]
    missing = [str(p.relative_to(layer)) for p in sources if not (p.parent / "__pycache__" / f"{p.stem}.{tag}.pyc").is_file()]
    assert sources and not missing, f"{len(missing)} modules without bytecode, e.g. {missing[:5]}"
    for module in ("timmy/config.py", "pydantic/main.py", "aws_lambda_powertools/event_handler/api_gateway.py", "botocore/client.py"):
        header = (layer / module).parent.joinpath("__pycache__", f"{Path(module).stem}.{tag}.pyc").read_bytes()[:8]
        assert int.from_bytes(header[4:8], "little") == 0b01, f"{module}: not an unchecked-hash .pyc"
    print(f"make build from a clean copy: {elapsed:.1f} s", file=sys.stderr)


def test_the_runtime_finder_names_what_is_missing(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "PYENV_ROOT": str(tmp_path / "pyenv"), "PYTHONPATH": f"{ROOT}:{ROOT / 'shared'}"}
    result = subprocess.run([sys.executable, "-m", "local.runtime", "--bin-dir"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert "python3.12 (template.yaml's Runtime) was not found" in result.stderr and "pyenv install 3.12" in result.stderr


def test_the_runtime_finder_skips_a_shim_that_does_not_run(tmp_path: Path) -> None:
    """A pyenv shim on PATH answers `command not found` unless the version is selected: not a runtime."""
    shim = tmp_path / "bin" / "python3.12"
    shim.parent.mkdir()
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.12: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    real = tmp_path / "pyenv" / "versions" / "3.12.9" / "bin" / "python3.12"
    real.parent.mkdir(parents=True)
    real.write_text("#!/bin/sh\necho 3.12\n")  # answers the version probe as 3.12 does
    real.chmod(0o755)
    (tmp_path / "pyenv" / "versions" / "3.12-dev").mkdir()  # not a release: ignored
    env = {"PATH": f"{shim.parent}:/usr/bin:/bin", "PYENV_ROOT": str(tmp_path / "pyenv"), "PYTHONPATH": f"{ROOT}:{ROOT / 'shared'}"}
    result = subprocess.run([sys.executable, "-m", "local.runtime"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(real)
