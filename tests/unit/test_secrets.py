"""In AWS the admin key and the token secret come from Secrets Manager through Powertools
parameters (moto plays Secrets Manager here); locally from the plain environment values."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from timmy.config import Settings
from timmy.errors import Unavailable
from timmy_http.secrets import admin_api_key, token_secret


@pytest.fixture
def secretsmanager() -> Iterator[object]:
    with mock_aws():
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()
        yield boto3.client("secretsmanager", region_name="us-east-1")
        parameters.clear_caches()


def test_secrets_come_from_secrets_manager_by_name(secretsmanager: object) -> None:
    secretsmanager.create_secret(Name="timmy/admin", SecretString="from-secrets-manager")  # type: ignore[attr-defined]
    secretsmanager.create_secret(Name="timmy/token", SecretString="hmac-secret")  # type: ignore[attr-defined]
    settings = Settings(admin_api_key="", admin_api_key_secret_name="timmy/admin", token_secret="", token_secret_name="timmy/token")
    assert admin_api_key(settings) == "from-secrets-manager"
    assert token_secret(settings) == "hmac-secret"


def test_the_local_value_wins_and_a_missing_secret_is_a_503_not_a_crash(secretsmanager: object) -> None:
    assert admin_api_key(Settings(admin_api_key="local-admin-key", admin_api_key_secret_name="ignored")) == "local-admin-key"
    with pytest.raises(Unavailable) as refused:
        admin_api_key(Settings(admin_api_key="", admin_api_key_secret_name=""))
    assert refused.value.code == "not_configured"
