"""Builds the :class:`ProcessorSource` of a stored connection: who to read, how fast, with what key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import httpx
from contracts.connections import ProcessorCredentials, StoredConnection
from contracts.events import Mode, Processor

from importer.adapters.chargebee_source import ChargebeeSource
from importer.adapters.learned_limits import AccountPace, RateLearner
from importer.adapters.processor_http import (
    BearerAuth,
    ProcessorAccount,
    ProcessorClient,
    RetryPolicy,
    new_http_client,
)
from importer.adapters.rate_budget import RateBudget, RateLimits
from importer.adapters.stripe_source import STRIPE_API_VERSION, StripeSource
from importer.domain.source import ProcessorSource

CHARGEBEE_DEFAULT_REQUESTS_PER_MINUTE: Final = 150
#: Share of a processor's published limit the budget uses, so that clock and network jitter never
#: push a second over it.
DEFAULT_HEADROOM: Final = 0.97


@dataclass(frozen=True, slots=True)
class ProcessorLimits:
    """Published request limits (Stripe per second, per account and mode; Chargebee per minute).

    Stripe: 100 requests/s in live mode and 25 in test mode per account, and 25/s per endpoint
    (each list endpoint counts on its own). Test-mode endpoints are paced at 10/s, as the sandbox
    does. Chargebee's limit depends on the site's plan (150/min on the smallest).
    """

    stripe_live_per_s: float = 100.0
    stripe_live_endpoint_per_s: float = 25.0
    stripe_test_per_s: float = 25.0
    stripe_test_endpoint_per_s: float = 10.0
    chargebee_per_minute: float = CHARGEBEE_DEFAULT_REQUESTS_PER_MINUTE
    headroom: float = DEFAULT_HEADROOM

    def stripe(self, mode: Mode | None) -> RateLimits:
        if mode is Mode.LIVE:
            return RateLimits(
                self.stripe_live_per_s * self.headroom, self.stripe_live_endpoint_per_s * self.headroom
            )
        return RateLimits(
            self.stripe_test_per_s * self.headroom, self.stripe_test_endpoint_per_s * self.headroom
        )

    def chargebee(self) -> RateLimits:
        return RateLimits(self.chargebee_per_minute / 60.0 * self.headroom)


def stripe_account_key(connection: StoredConnection) -> str:
    # Limits are per Stripe account and per mode.
    account = connection.processor_account_id or connection.connection_id
    mode = (connection.mode or Mode.TEST).value
    return f"stripe:{account}:{mode}"


def chargebee_account_key(connection: StoredConnection) -> str:
    # Limits are per site (a test site is a site of its own).
    return f"chargebee:{connection.site}"


def is_test_site(connection: StoredConnection) -> bool:
    """A Chargebee test site (``<name>-test``, or a connection in test mode)."""
    if connection.mode is not None:
        return connection.mode is Mode.TEST
    return (connection.site or "").endswith("-test")


def chargebee_pace(
    learner: RateLearner | None, connection: StoredConnection, limits: ProcessorLimits, *, probe_live: bool
) -> AccountPace | None:
    """The site's learned pace (``None`` without a learner): probing past the configured limit on
    test sites, and on live ones only when ``probe_live`` says so."""
    if learner is None:
        return None
    return learner.account(
        Processor.CHARGEBEE.value,
        chargebee_account_key(connection),
        limits.chargebee_per_minute,
        beyond_configured=probe_live or is_test_site(connection),
    )


def processor_account(
    connection: StoredConnection, credentials: ProcessorCredentials, limits: ProcessorLimits
) -> ProcessorAccount:
    """Whose requests these are: the connection's account key and limits, and its credentials."""
    api_key = credentials.api_key.get_secret_value()
    if connection.processor is Processor.STRIPE:
        return ProcessorAccount(
            Processor.STRIPE,
            stripe_account_key(connection),
            limits.stripe(connection.mode),
            BearerAuth(api_key),
            connection.credentials_version,
        )
    return ProcessorAccount(
        Processor.CHARGEBEE,
        chargebee_account_key(connection),
        limits.chargebee(),
        httpx.BasicAuth(api_key, ""),
        connection.credentials_version,
    )


def build_source(
    connection: StoredConnection,
    credentials: ProcessorCredentials,
    *,
    stripe_api_base: str,
    chargebee_url_template: str,
    rate_budget: RateBudget,
    http: httpx.AsyncClient | None = None,
    limits: ProcessorLimits | None = None,
    retry_policy: RetryPolicy | None = None,
    learner: RateLearner | None = None,
    probe_live: bool = False,
) -> ProcessorSource:
    """The source reading ``connection``'s account with ``credentials``.

    Pass the process's shared ``http`` client (see ``processor_http.new_http_client``); without
    one the source opens its own and closes it in ``aclose``. With ``learner``, a Chargebee site is
    paced at its learned limit (see ``chargebee_pace``). Raises ``ValueError`` for a
    connection that names no processor, or a Chargebee connection without a site.
    """
    if connection.processor is None:
        raise ValueError(f"connection {connection.connection_id} names no processor to import from")
    if connection.processor is Processor.CHARGEBEE and not connection.site:
        raise ValueError("a Chargebee connection needs its site")
    limits = limits or ProcessorLimits()
    owns_http = http is None
    client = http if http is not None else new_http_client()
    account = processor_account(connection, credentials, limits)
    if connection.processor is Processor.STRIPE:
        stripe_client = ProcessorClient(
            client,
            account,
            rate_budget,
            headers={"Stripe-Version": STRIPE_API_VERSION},
            policy=retry_policy or RetryPolicy(rate_limit_window_s=1.0),
            owns_http=owns_http,
        )
        return StripeSource(stripe_client, stripe_api_base)
    site = connection.site or ""
    chargebee_client = ProcessorClient(
        client,
        account,
        rate_budget,
        headers={"Accept": "application/json"},
        # Chargebee counts requests per minute: a 429 without Retry-After waits for the window.
        policy=retry_policy or RetryPolicy(rate_limit_window_s=60.0),
        owns_http=owns_http,
        pace=chargebee_pace(learner, connection, limits, probe_live=probe_live),
    )
    site_url = chargebee_url_template.replace("{site}", site)
    return ChargebeeSource(chargebee_client, site_url, connection.product_catalog)
