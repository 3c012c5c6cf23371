"""The layers of `shared/timmy`, read from the source: the ledger (and the adapters) are the only
writers of DynamoDB expressions; use cases compose the ledger's typed operations; imports point
inward (the ports import no use case, the domain imports no adapter, boto3, Powertools or handler)."""

from __future__ import annotations

import ast
from pathlib import Path

TIMMY = Path(__file__).resolve().parents[2] / "shared" / "timmy"
EXPRESSION_WRITERS = ("ledger", "adapters")
# What the ports and the value modules below them may import from Timmy: nothing above them.
PORT_IMPORTS = ("timmy.ports", "timmy.errors", "timmy.metering", "timmy.invoice_codec", "timmy.pubkey", "timmy.clock")
OUTSIDE_THE_DOMAIN = ("timmy.adapters", "timmy_http", "functions", "boto3", "botocore", "aws_lambda_powertools")


def _sources(under: Path = TIMMY) -> list[Path]:
    return sorted(under.rglob("*.py"))


def _imports(source: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def test_only_the_ledger_and_the_adapters_write_dynamodb_expressions() -> None:
    writers = {source.relative_to(TIMMY).as_posix() for source in _sources() if "Expression" in source.read_text()}
    assert writers, "the check must see the ledger's own expressions"
    assert {path for path in writers if path.split("/")[0] not in EXPRESSION_WRITERS} == set()


def test_no_use_case_reads_or_writes_through_the_ledgers_store() -> None:
    assert [source.name for source in _sources() if "ledger.store" in source.read_text()] == []


def test_the_ports_import_nothing_above_them() -> None:
    offenders = {
        f"{source.name}: {name}"
        for source in _sources(TIMMY / "ports")
        for name in _imports(source)
        if name.startswith("timmy") and not _within(name, PORT_IMPORTS)
    }
    assert offenders == set()


def test_the_domain_imports_no_adapter_aws_sdk_or_handler() -> None:
    offenders = {
        f"{source.relative_to(TIMMY)}: {name}"
        for source in _sources()
        if source.relative_to(TIMMY).parts[0] != "adapters"
        for name in _imports(source)
        if _within(name, OUTSIDE_THE_DOMAIN)
    }
    assert offenders == set()


def test_a_package_init_imports_nothing() -> None:
    """Importing one module of a package never imports its siblings (a cold start pays only for the
    modules it uses): names are imported from the module that defines them."""
    inits = _sources(TIMMY) + _sources(TIMMY.parent / "timmy_http")
    offenders = {source.relative_to(TIMMY.parent).as_posix() for source in inits if source.name == "__init__.py" and _imports(source)}
    assert offenders == set()
