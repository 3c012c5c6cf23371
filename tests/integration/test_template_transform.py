"""template.yaml transformed offline by aws-sam-translator (what CloudFormation would deploy):
the routes, the queues, the event source mappings and least-privilege policies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from local.template import TEMPLATE_PATH, resources

PSEUDO_PARAMETERS = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
OWN_RESOURCES = {
    "SweeperFunction",
    "TimmyTable",
    "SettlementQueue",
    "WorkQueue",
    "SettlementDeadLetterQueue",
    "WorkDeadLetterQueue",
    "AdminApiKeySecret",
    "TokenSecret",
    "LightningApiKeySecret",
}


class NoManagedPolicies:
    """The managed-policy loader, offline: SAM asks IAM for names only when a policy is not bundled."""

    def load(self) -> dict[str, str]:
        return {}


@pytest.fixture(scope="module")
def deployed() -> dict[str, Any]:
    template = yaml_parse(TEMPLATE_PATH.read_text(encoding="utf-8"))
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            props["CodeUri"] = "s3://placeholder/code.zip"
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = "s3://placeholder/layer.zip"
    return transform(template, PSEUDO_PARAMETERS, NoManagedPolicies())["Resources"]


def of_type(deployed: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: r for name, r in deployed.items() if r["Type"] == kind}


def test_every_route_is_on_the_http_api(deployed: dict[str, Any]) -> None:
    ((_, api),) = of_type(deployed, "AWS::ApiGatewayV2::Api").items()
    paths = api["Properties"]["Body"]["paths"]
    expected = set()
    for function in resources("AWS::Serverless::Function").values():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi":
                method = event["Properties"]["Method"].lower()
                expected.add((event["Properties"]["Path"], "x-amazon-apigateway-any-method" if method == "any" else method))
    generated = {
        (path, method)
        for path, item in paths.items()
        for method in _methods(item)
        if not method.startswith("x-amazon-apigateway-") or method.endswith("any-method")
    }
    assert generated == expected
    assert of_type(deployed, "AWS::ApiGatewayV2::Stage"), "the default stage carries the route throttling"


def _methods(item: dict[str, Any]) -> list[str]:
    """The methods of a path item; a conditional function's methods come wrapped in Fn::If."""
    methods = []
    for method, operation in item.items():
        if method == "Fn::If":
            _, when_true, _ = operation
            methods += _methods(when_true)
        else:
            methods.append(method)
    return methods


def test_the_dev_routes_exist_only_with_the_simulated_backend(deployed: dict[str, Any]) -> None:
    ((_, api),) = of_type(deployed, "AWS::ApiGatewayV2::Api").items()
    for path, item in api["Properties"]["Body"]["paths"].items():
        if path.startswith("/dev/"):
            for method, operation in item.items():
                assert method == "Fn::If" and operation[0] == "SimulatedLightning", (path, method)
    assert deployed["DevFunction"]["Condition"] == "SimulatedLightning"
    assert not resources("AWS::Serverless::Function", environ={"LIGHTNING_BACKEND": "lnbits"}).get("DevFunction")
    assert resources("AWS::Serverless::Function", environ={"LIGHTNING_BACKEND": "simulated"}).get("DevFunction")


def test_queues_have_dead_letter_queues(deployed: dict[str, Any]) -> None:
    queues = of_type(deployed, "AWS::SQS::Queue")
    assert set(queues) == {"SettlementQueue", "WorkQueue", "SettlementDeadLetterQueue", "WorkDeadLetterQueue"}
    for name in ("SettlementQueue", "WorkQueue"):
        redrive = queues[name]["Properties"]["RedrivePolicy"]
        assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [name.replace("Queue", "DeadLetterQueue"), "Arn"]}
        assert 1 < redrive["maxReceiveCount"] <= 10


def test_queue_consumers_report_batch_item_failures(deployed: dict[str, Any]) -> None:
    mappings = {
        m["Properties"]["FunctionName"]["Ref"]: m["Properties"] for m in of_type(deployed, "AWS::Lambda::EventSourceMapping").values()
    }
    assert set(mappings) == {"SettlementFunction", "WorkerFunction"}
    assert mappings["SettlementFunction"]["EventSourceArn"] == {"Fn::GetAtt": ["SettlementQueue", "Arn"]}
    assert mappings["WorkerFunction"]["EventSourceArn"] == {"Fn::GetAtt": ["WorkQueue", "Arn"]}
    for props in mappings.values():
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_sweeper_runs_on_a_schedule(deployed: dict[str, Any]) -> None:
    ((_, schedule),) = of_type(deployed, "AWS::Scheduler::Schedule").items()
    assert schedule["Properties"]["Target"]["Arn"] == {"Fn::GetAtt": ["SweeperFunction", "Arn"]}


def test_inline_policies_are_scoped_to_our_resources(deployed: dict[str, Any]) -> None:
    for name, role in of_type(deployed, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                resources_ = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                for resource in resources_:
                    assert resource != "*", f"{name}: {statement['Action']} on every resource"
                    text = json.dumps(resource)
                    assert any(own in text for own in OWN_RESOURCES), f"{name}: {statement['Action']} on {text}"


def test_functions_run_on_arm64_with_the_shared_layer(deployed: dict[str, Any]) -> None:
    for name, function in of_type(deployed, "AWS::Lambda::Function").items():
        props = function["Properties"]
        assert props["Architectures"] == ["arm64"] and props["Runtime"].startswith("python3.")
        assert any("SharedLayer" in json.dumps(layer) for layer in props["Layers"]), name
        assert props["TracingConfig"] == {"Mode": "Active"}


def test_public_base_url_comes_from_a_parameter_or_api_gateways_own_domain(deployed: dict[str, Any]) -> None:
    # Issue 14: the NIP-98 URL must come from configuration or from what API Gateway asserts. The
    # template passes PublicBaseUrl to every function; empty by default, so requestContext.domainName is used.
    template = yaml_parse(TEMPLATE_PATH.read_text(encoding="utf-8"))
    assert template["Parameters"]["PublicBaseUrl"]["Default"] == ""
    for name, function in of_type(deployed, "AWS::Lambda::Function").items():
        assert function["Properties"]["Environment"]["Variables"]["PUBLIC_BASE_URL"] == {"Ref": "PublicBaseUrl"}, name
