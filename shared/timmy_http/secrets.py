"""Secrets: from Secrets Manager through Powertools parameters (cached) in AWS, or the plain
environment values in the local stack and tests."""

from __future__ import annotations

from timmy.config import Settings
from timmy.errors import Unavailable

SECRET_MAX_AGE_SECONDS = 300


def _secret(name: str, local_value: str, what: str) -> str:
    if local_value:
        return local_value
    if name:
        from aws_lambda_powertools.utilities import parameters

        value = parameters.get_secret(name, max_age=SECRET_MAX_AGE_SECONDS)
        return value if isinstance(value, str) else bytes(value).decode()
    raise Unavailable(f"the {what} is not configured", code="not_configured")


def admin_api_key(settings: Settings) -> str:
    return _secret(settings.admin_api_key_secret_name, settings.admin_api_key, "admin API key")


def token_secret(settings: Settings) -> str:
    return _secret(settings.token_secret_name, settings.token_secret, "token secret")


def openai_api_key(settings: Settings) -> str:
    return _secret(settings.openai_api_key_secret_name, settings.openai_api_key, "OpenAI API key")


def anthropic_api_key(settings: Settings) -> str:
    return _secret(settings.anthropic_api_key_secret_name, settings.anthropic_api_key, "Anthropic API key")


def lightning_api_key(settings: Settings) -> str:
    return _secret(settings.lightning_api_key_secret_name, settings.lightning_api_key, "Lightning backend's API key")
