"""Reading template.yaml: the one source of truth for routes, queues and the table, locally too."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that keeps CloudFormation's short tags (!Ref, !GetAtt, !Sub) as plain data."""


def _tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


@lru_cache(maxsize=4)
def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass


def resources(kind: str, path: Path = TEMPLATE_PATH, environ: Mapping[str, str] = os.environ) -> dict[str, dict[str, Any]]:
    """The template's resources of one type, by logical id: those whose `Condition` holds."""
    template = load_template(path)
    return {
        name: r
        for name, r in template["Resources"].items()
        if r["Type"] == kind and ("Condition" not in r or condition_holds(template, r["Condition"], environ))
    }


def parameter_value(template: dict[str, Any], name: str, environ: Mapping[str, str] = os.environ) -> str:
    """A parameter as the local stack sets it: the environment variable the template's Globals map
    it to (`LIGHTNING_BACKEND: !Ref LightningBackend`) when set, else the parameter's default."""
    variables = (((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}).get("Variables") or {}
    for variable, value in variables.items():
        if value == {"Ref": name} and environ.get(variable):
            return environ[variable]
    return str(template["Parameters"][name].get("Default", ""))


def condition_holds(template: dict[str, Any], name: str, environ: Mapping[str, str] = os.environ) -> bool:
    """A template condition, evaluated locally (the `Fn::Equals` of a parameter and a value)."""
    expression = template["Conditions"][name]
    if set(expression) != {"Fn::Equals"}:
        raise ValueError(f"the local stack evaluates only Fn::Equals conditions, not {name}: {expression}")
    left, right = (
        parameter_value(template, side["Ref"], environ) if isinstance(side, dict) else str(side) for side in expression["Fn::Equals"]
    )
    return left == right


def table_definition(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """`CreateTable` arguments for the template's table (billing, keys, GSIs), minus the AWS-only bits."""
    ((_, table),) = resources("AWS::DynamoDB::Table", path).items()
    props = table["Properties"]
    definition: dict[str, Any] = {
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        definition["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    return definition


def ttl_attribute(path: Path = TEMPLATE_PATH) -> str | None:
    ((_, table),) = resources("AWS::DynamoDB::Table", path).items()
    spec = table["Properties"].get("TimeToLiveSpecification") or {}
    return spec.get("AttributeName") if spec.get("Enabled") else None
