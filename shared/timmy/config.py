"""Every environment variable Timmy reads, parsed once per cold start into one pydantic model.

The README's configuration table documents these fields; `tests/unit/test_config.py` keeps the two
in step. Secrets never live here in AWS: the `*_SECRET_NAME` fields name a Secrets Manager secret
that `timmy_http.secrets` fetches through Powertools parameters (cached), while the plain fields
(`ADMIN_API_KEY`, `TOKEN_SECRET`) exist for the local stack and tests only.
"""

# No `from __future__ import annotations` here: pydantic would evaluate each of Settings' ~80
# annotations from its text (a compile apiece) on every cold start; as objects they cost nothing.
import json
import os
import re
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Tier = Literal["new", "established", "trusted", "elite"]
TIERS: tuple[Tier, ...] = ("new", "established", "trusted", "elite")


PATTERNS_MAX = 200  # a bound on the evaluator's rule list: every request runs each of them


def parse_patterns(text: str) -> list[str]:
    """`EVAL_DISALLOWED_PATTERNS`: a JSON array of regular expressions ("" for none)."""
    if not text.strip():
        return []
    patterns = json.loads(text)
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        raise ValueError("EVAL_DISALLOWED_PATTERNS must be a JSON array of non-empty strings")
    if len(patterns) > PATTERNS_MAX:
        raise ValueError(f"EVAL_DISALLOWED_PATTERNS holds {len(patterns)} patterns; at most {PATTERNS_MAX}")
    for number, pattern in enumerate(patterns, start=1):
        try:
            re.compile(pattern)  # a bad pattern stops the cold start, not a request
        except re.error as error:
            raise ValueError(f"EVAL_DISALLOWED_PATTERNS rule {number} is not a regular expression: {error}") from None
    return patterns


class Settings(BaseModel):
    """Timmy's configuration; field names are the environment variables, upper-cased.

    A plain pydantic model read by `from_environment` (pydantic-settings would cost ~11 ms of
    every cold start for what one dictionary comprehension does).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """The settings named by the environment (`TABLE_NAME`, …); defaults for the rest."""
        environ = os.environ if environ is None else environ
        return cls.model_validate({name: environ[name.upper()] for name in cls.model_fields if name.upper() in environ})

    # --- storage and queues -------------------------------------------------------------
    table_name: str = "timmy"
    settlement_queue_url: str = ""
    work_queue_url: str = ""

    # --- HTTP ---------------------------------------------------------------------------
    public_base_url: str = ""  # empty: rebuilt from the event's domain name (or Host locally)
    max_body_bytes: int = Field(default=65_536, gt=0)
    version: str = "0.1.0"

    # --- secrets (local values, or the names of Secrets Manager secrets in AWS) ----------
    admin_api_key: str = ""
    admin_api_key_secret_name: str = ""
    token_secret: str = ""
    token_secret_name: str = ""
    token_ttl_seconds: int = Field(default=86_400, gt=0)
    lightning_api_key_secret_name: str = ""

    # --- the generosity pool and free tier -----------------------------------------------
    pool_seed_sats: int = Field(default=10_000, ge=0)
    pool_credit_pct: int = Field(default=10, ge=0, le=100)
    reservation_ttl_seconds: int = Field(default=1_800, gt=0)  # > the work queue's whole redelivery span (tested)
    free_tier_budget_new: int = Field(default=0, ge=0)
    free_tier_budget_established: int = Field(default=50, ge=0)
    free_tier_budget_trusted: int = Field(default=200, ge=0)
    free_tier_budget_elite: int = Field(default=1_000, ge=0)

    # --- trust tiers from paid history (identity) ----------------------------------------
    tier_established_paid_sats: int = Field(default=1_000, ge=0)
    tier_established_paid_requests: int = Field(default=3, ge=0)
    tier_established_age_days: int = Field(default=1, ge=0)
    tier_trusted_paid_sats: int = Field(default=20_000, ge=0)
    tier_trusted_paid_requests: int = Field(default=20, ge=0)
    tier_trusted_age_days: int = Field(default=7, ge=0)
    tier_elite_paid_sats: int = Field(default=200_000, ge=0)
    tier_elite_paid_requests: int = Field(default=100, ge=0)
    tier_elite_age_days: int = Field(default=30, ge=0)

    # --- pricing and the BTC/USD oracle --------------------------------------------------
    price_source: Literal["fixed", "exchanges"] = "fixed"
    fixed_btc_price_usd: Decimal = Field(default=Decimal("100000"), gt=0)
    price_max_age_seconds: int = Field(default=300, gt=0)
    price_min_usd: Decimal = Field(default=Decimal("1000"), gt=0)
    price_max_usd: Decimal = Decimal("10000000")
    price_spread_max_pct: Decimal = Field(default=Decimal("2"), gt=0)
    price_fetch_timeout_seconds: float = Field(default=2.0, gt=0)
    infra_overhead_pct: Decimal = Field(default=Decimal("20"), ge=0)
    margin_pct: Decimal = Field(default=Decimal("30"), ge=0)
    price_refresh_seconds: int = Field(default=60, gt=0)  # a cached price older than this is refetched
    price_sources_min: int = Field(default=2, ge=1)  # fresh exchange answers needed for a median
    price_coinbase_base_url: str = "https://api.coinbase.com"
    price_kraken_base_url: str = "https://api.kraken.com"
    price_bitstamp_base_url: str = "https://www.bitstamp.net"
    # Request limits, in one place (timmy.pricing.limits reads them): a request's text in UTF-8
    # bytes and in (upper-bound) input tokens. max_output_tokens is bounded per model by the catalogue.
    request_bytes_max: int = Field(default=32_768, gt=0)
    request_input_tokens_max: int = Field(default=32_768, gt=0)
    default_model: str = "timmy-local"
    # The evaluator's disallowed-content rules: a JSON array of case-insensitive regular expressions.
    eval_disallowed_patterns: str = ""

    # --- the executor (the worker's model calls) ------------------------------------------
    executor_backend: Literal["deterministic", "providers"] = "deterministic"
    executor_timeout_seconds: float = Field(default=45.0, gt=0)  # < the worker's Timeout (tested)
    openai_base_url: str = "https://api.openai.com/v1"
    openai_max_tokens_field: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens"
    openai_api_key: str = ""
    openai_api_key_secret_name: str = ""
    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_api_key: str = ""
    anthropic_api_key_secret_name: str = ""

    # --- Lightning -----------------------------------------------------------------------
    lightning_backend: Literal["simulated", "lnbits"] = "simulated"
    timmy_data_dir: str = ".local"  # the simulated node's key and its invoices (local stack only)
    invoice_expiry_seconds: int = Field(default=900, ge=60, le=86_400)
    donation_max_sats: int = Field(default=1_000_000, ge=1)
    payout_fee_limit_sats: int = Field(default=10, ge=0)  # the most routing fee a payout may spend
    payout_unknown_grace_seconds: int = Field(default=600, gt=0)  # a payout the backend never saw is failed after this
    eval_fee_sats: int = Field(default=0, ge=0)  # when set, gate-path jobs first pay this (awaiting_eval_payment)
    max_unpaid_jobs: int = Field(default=10, ge=1)  # open unpaid jobs per identity (or per address when anonymous); 429 beyond
    job_stuck_seconds: int = Field(default=1_500, gt=0)  # an executing job older than this is failed by the sweeper
    # A job's work lease: a delivery runs the executor only once it holds it. Longer than the worker's
    # Timeout (a live worker's never lapses), shorter than the work queue's VisibilityTimeout (the
    # redelivery after a killed worker finds it lapsed and runs the work); both tested.
    work_lease_seconds: int = Field(default=120, gt=0)
    session_max_sats: int = Field(default=1_000_000, ge=1)  # the largest session payment or top-up
    session_hold_ttl_seconds: int = Field(default=300, gt=0)  # a request's hold on its session: longer than any request
    session_close_wait_seconds: float = Field(default=5.0, ge=0)  # how long a close waits for in-flight requests
    session_idle_seconds: int = Field(default=3_600, gt=0)  # idle sessions with a refund address are closed by the sweeper
    lightning_api_key: str = ""  # plain (local stack and tests); AWS: lightning_api_key_secret_name
    lnbits_url: str = ""  # LNbits' base URL (LIGHTNING_BACKEND=lnbits); the key is its wallet's admin key
    lnbits_timeout_seconds: float = Field(default=10.0, gt=0)  # per call; above LNbits' 5 s pay wait
    lnurl_timeout_seconds: float = Field(default=5.0, gt=0)  # each LNURL-pay request (two per refund)
    lnurl_allow_local: bool = False  # tests only: refund addresses at localhost/127.0.0.1 over http

    @field_validator("eval_disallowed_patterns")
    @classmethod
    def _patterns_compile(cls, value: str) -> str:
        parse_patterns(value)  # a bad list or pattern stops the cold start with the variable's name
        return value

    def daily_budget_sats(self, tier: Tier) -> int:
        """The subsidy budget of one identity of `tier` for one UTC day."""
        return {
            "new": self.free_tier_budget_new,
            "established": self.free_tier_budget_established,
            "trusted": self.free_tier_budget_trusted,
            "elite": self.free_tier_budget_elite,
        }[tier]

    def daily_budgets(self) -> dict[str, int]:
        """Every tier's daily budget, as shown by the pool and estimate routes."""
        return {tier: self.daily_budget_sats(tier) for tier in TIERS}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read from the environment once (once per cold start)."""
    return Settings.from_environment()
