"""Sample accounts, sites and keys shared by the fakes, the run command and the tests.

Every secret here is a *test* secret for a fake server. Live-mode keys are never written out in
source: `live_stripe_key` and `live_chargebee_key` assemble them at run time so that secret
scanners never see a live-looking literal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

StripeMode = Literal["test", "live"]
CatalogVersion = Literal["1.0", "2.0"]

# Resources a Stripe restricted key can be granted, named like the list endpoints.
STRIPE_RESOURCES: tuple[str, ...] = (
    "account",
    "customers",
    "products",
    "prices",
    "plans",
    "coupons",
    "subscriptions",
    "invoices",
    "events",
)
CHARGEBEE_RESOURCES: tuple[str, ...] = (
    "customers",
    "subscriptions",
    "invoices",
    "coupons",
    "plans",
    "addons",
    "items",
    "item_prices",
    "events",
)

# --- Stripe -----------------------------------------------------------------------------------
SAMPLE_STRIPE_ACCOUNT_ID = "acct_1SandboxAcme0001"
SAMPLE_STRIPE_ACCOUNT_NAME = "Acme Subscriptions Inc."
SAMPLE_STRIPE_OTHER_ACCOUNT_ID = "acct_1SandboxGlobex02"
SAMPLE_STRIPE_OTHER_ACCOUNT_NAME = "Globex GmbH"
SAMPLE_STRIPE_PLATFORM_ACCOUNT_ID = "acct_1SandboxPlatform"

SAMPLE_STRIPE_KEY = "sk_test_51SandboxAcmeSecretKey000000000000000000acme"
"""Full-access test secret key of the primary account (`SAMPLE_STRIPE_ACCOUNT_ID`)."""
SAMPLE_STRIPE_RESTRICTED_KEY = "rk_test_51SandboxAcmeReadOnlyKey0000000000000000read"
"""Restricted key that may read every resource the importer needs."""
SAMPLE_STRIPE_LIMITED_KEY = "rk_test_51SandboxAcmeNoInvoicesKey00000000000000noin"
"""Restricted key that may read everything except invoices (403 on `/v1/invoices`)."""
SAMPLE_STRIPE_NO_ACCOUNT_KEY = "rk_test_51SandboxAcmeNoAccountKey000000000000000noac"
"""Least-privilege restricted key: reads the billing resources but not `/v1/account` (403 there)."""
SAMPLE_STRIPE_PUBLISHABLE_KEY = "pk_test_51SandboxAcmePublishableKey0000000000000pubk"
SAMPLE_STRIPE_OTHER_ACCOUNT_KEY = "sk_test_51SandboxGlobexSecretKey0000000000000000glbx"
"""Full-access test secret key of the second account (`SAMPLE_STRIPE_OTHER_ACCOUNT_ID`)."""

SAMPLE_STRIPE_CLIENT_ID = "ca_SandboxPlatformClientId00000000"
"""Connect platform `client_id` (give it to the connector as `STRIPE_CLIENT_ID`)."""
SAMPLE_STRIPE_PLATFORM_SECRET_KEY = "sk_test_51SandboxPlatformSecretKey00000000000000plat"  # noqa: S105 - a fake's test key
"""Connect platform secret key (give it to the connector as `STRIPE_PLATFORM_SECRET_KEY`)."""

# --- Chargebee --------------------------------------------------------------------------------
SAMPLE_CHARGEBEE_SITE = "acme-test"
"""Test site on Product Catalog 2.0 holding the main sample dataset."""
SAMPLE_CHARGEBEE_KEY = "test_SandboxAcmeChargebeeKey0000000000acme"
SAMPLE_CHARGEBEE_RESTRICTED_KEY = "test_SandboxAcmeNoInvoicesKey000000000noin"
"""Read-only key of `acme-test` that may not list invoices (403 `api_authorization_failed`)."""
SAMPLE_CHARGEBEE_READ_ONLY_KEY = "test_SandboxAcmeReadOnlyKey00000000000read"
"""Read-only key of `acme-test` that reads everything; writes answer 403 `api_authorization_failed`."""
SAMPLE_CHARGEBEE_PC1_SITE = "acme-legacy-test"
"""Test site on Product Catalog 1.0 (plans and addons)."""
SAMPLE_CHARGEBEE_PC1_KEY = "test_SandboxAcmeLegacyKey000000000000lgcy"
SAMPLE_CHARGEBEE_BLOCKED_SITE = "blocked-test"
"""A site that exists but answers 403 to everything."""
SAMPLE_CHARGEBEE_BLOCKED_KEY = "test_SandboxBlockedSiteKey00000000000blck"
SAMPLE_CHARGEBEE_LIVE_SITE = "acme"
"""Live-mode site (Product Catalog 1.0); its key comes from `live_chargebee_key()`."""

CHARGEBEE_DEFAULT_RATE_LIMIT_PER_MIN = 150
STRIPE_LIVE_GLOBAL_RATE_PER_S = 100.0
STRIPE_LIVE_ENDPOINT_RATE_PER_S = 25.0
STRIPE_TEST_GLOBAL_RATE_PER_S = 25.0
STRIPE_TEST_ENDPOINT_RATE_PER_S = 10.0


def live_stripe_key(suffix: str = "SandboxAcmeLive") -> str:
    """A live-mode secret key for the fake only, assembled at run time."""
    return "sk_" + "live_" + ("51" + suffix).ljust(40, "0") + "live"


def live_chargebee_key(suffix: str = "SandboxAcmeLive") -> str:
    """A live-site Chargebee key for the fake only, assembled at run time."""
    return "live" + "_" + suffix.ljust(32, "0") + "live"


# --- Configuration objects --------------------------------------------------------------------


@dataclass(frozen=True)
class RateLimit:
    """Requests per second allowed for one account: overall and per endpoint (None: unlimited)."""

    global_per_s: float | None = None
    endpoint_per_s: float | None = None


@dataclass(frozen=True)
class StripeRateLimits:
    """Rate limits per mode, like Stripe's (live: 100/s global, 25/s per endpoint by default)."""

    live: RateLimit = field(default_factory=RateLimit)
    test: RateLimit = field(default_factory=RateLimit)
    retry_after_s: int | None = 1
    """Value of `Retry-After` on a 429; None leaves the header out (Stripe usually sends none)."""


@dataclass(frozen=True)
class StripeKey:
    """An API key the fake Stripe accepts; `resources` restricts an `rk_` key (None: all)."""

    key: str
    account_id: str
    resources: frozenset[str] | None = None

    @property
    def mode(self) -> StripeMode:
        return "live" if self.key.startswith(("sk_live_", "rk_live_")) else "test"

    @property
    def restricted(self) -> bool:
        return self.key.startswith("rk_")


@dataclass(frozen=True)
class StripeAccount:
    """A Stripe account served by the fake, with the objects its lists return."""

    id: str
    business_name: str
    email: str
    country: str = "US"
    default_currency: str = "usd"
    created: int = 1_600_000_000
    data: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class StripePlatform:
    """The Connect platform (our product) that asks accounts for OAuth access."""

    client_id: str = SAMPLE_STRIPE_CLIENT_ID
    secret_keys: tuple[str, ...] = (SAMPLE_STRIPE_PLATFORM_SECRET_KEY,)
    account_id: str = SAMPLE_STRIPE_PLATFORM_ACCOUNT_ID
    name: str = "Billing Import (sandbox platform)"
    allowed_redirect_uris: tuple[str, ...] | None = None
    """None accepts any http(s) redirect_uri; otherwise it must be one of these."""


@dataclass(frozen=True)
class ChargebeeKey:
    """An API key of one site; `resources` restricts it (None: all, a full-access key).

    A key with `resources` is a read-only key: it may list those resources and write nothing.
    """

    key: str
    resources: frozenset[str] | None = None


@dataclass(frozen=True)
class ChargebeeSite:
    """A Chargebee site served by the fake."""

    name: str
    keys: tuple[ChargebeeKey, ...]
    catalog_version: CatalogVersion = "2.0"
    blocked: bool = False
    rate_limit_per_min: int | None = CHARGEBEE_DEFAULT_RATE_LIMIT_PER_MIN
    data: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def livemode(self) -> bool:
        return not self.name.endswith("-test")


def stripe_resources_except(*excluded: str) -> frozenset[str]:
    return frozenset(r for r in STRIPE_RESOURCES if r not in excluded)


def chargebee_resources_except(*excluded: str) -> frozenset[str]:
    return frozenset(r for r in CHARGEBEE_RESOURCES if r not in excluded)
