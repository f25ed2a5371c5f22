"""State of one fake Stripe: accounts and their objects, keys, rate limits, OAuth grants."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fastapi import Request

from sandbox import config as cfg
from sandbox.admin import FaultSpec, SandboxControl
from sandbox.collection import Collection, Obj
from sandbox.data import Dataset, DatasetOptions, generate_dataset
from sandbox.events import SandboxClock
from sandbox.fake_stripe.changes import UNSET, RequestInfo, StripeChanges
from sandbox.fake_stripe.errors import RATE_LIMIT_MESSAGE, StripeError, injected_error, mask_key
from sandbox.fake_stripe.lists import LISTS
from sandbox.fake_stripe.oauth import ConnectOAuth
from sandbox.idempotency import IdempotencyKeys
from sandbox.ratelimit import RateLimiter, TokenBucket, admit

NO_KEY_MESSAGE = (
    "You did not provide an API key. You need to provide your API key in the Authorization header, "
    "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/."
)
PUBLISHABLE_KEY_MESSAGE = (
    "This API call cannot be made with a publishable API key. Please use a secret API key. You can find "
    "a list of your API keys at https://dashboard.stripe.com/account/apikeys."
)
# The restricted-key permission Stripe names when one is missing.
PERMISSIONS = {
    "account": "rak_accounts_kyc_basic_read",
    "customers": "rak_customer_read",
    "products": "rak_product_read",
    "prices": "rak_price_read",
    "plans": "rak_plan_read",
    "coupons": "rak_coupon_read",
    "subscriptions": "rak_subscription_read",
    "invoices": "rak_invoice_read",
    "events": "rak_event_read",
}


@dataclass
class AccountState:
    account: cfg.StripeAccount
    collections: dict[str, Collection]
    platform: bool = False

    def object_json(self) -> Obj:
        a = self.account
        return {
            "id": a.id,
            "object": "account",
            "business_profile": {
                "mcc": "5734",
                "name": a.business_name,
                "support_email": a.email,
                "support_phone": None,
                "support_url": None,
                "url": None,
            },
            "business_type": "company",
            "capabilities": {"card_payments": "active", "transfers": "active"},
            "charges_enabled": True,
            "controller": {"type": "account"},
            "country": a.country,
            "created": a.created,
            "default_currency": a.default_currency,
            "details_submitted": True,
            "email": a.email,
            "metadata": {},
            "payouts_enabled": True,
            "settings": {"dashboard": {"display_name": a.business_name, "timezone": "Etc/UTC"}},
            "type": "standard",
        }


@dataclass(frozen=True)
class AuthContext:
    key: str
    mode: str
    account: AccountState


@dataclass(frozen=True)
class StripeSettings:
    latency_s: float
    rate_limits: cfg.StripeRateLimits


def default_stripe_accounts(dataset: Dataset | None = None) -> list[cfg.StripeAccount]:
    """The sample accounts: Acme (the dataset) and a small Globex account (for account mismatch)."""
    data = dataset or generate_dataset()
    other = generate_dataset(
        DatasetOptions(
            seed=7, customers=5, chargebee=False, account_name=cfg.SAMPLE_STRIPE_OTHER_ACCOUNT_NAME
        )
    )
    return [
        cfg.StripeAccount(
            id=cfg.SAMPLE_STRIPE_ACCOUNT_ID,
            business_name=data.options.account_name,
            email="billing@acme.example",
            country="US",
            default_currency="usd",
            created=data.options.now - 800 * 86_400,
            data=data.stripe,
        ),
        cfg.StripeAccount(
            id=cfg.SAMPLE_STRIPE_OTHER_ACCOUNT_ID,
            business_name=cfg.SAMPLE_STRIPE_OTHER_ACCOUNT_NAME,
            email="finance@globex.example",
            country="DE",
            default_currency="eur",
            created=data.options.now - 400 * 86_400,
            data=other.stripe,
        ),
    ]


def default_stripe_keys() -> list[cfg.StripeKey]:
    acme = cfg.SAMPLE_STRIPE_ACCOUNT_ID
    return [
        cfg.StripeKey(cfg.SAMPLE_STRIPE_KEY, acme),
        cfg.StripeKey(cfg.SAMPLE_STRIPE_RESTRICTED_KEY, acme, frozenset(cfg.STRIPE_RESOURCES)),
        cfg.StripeKey(cfg.SAMPLE_STRIPE_LIMITED_KEY, acme, cfg.stripe_resources_except("invoices")),
        cfg.StripeKey(cfg.SAMPLE_STRIPE_NO_ACCOUNT_KEY, acme, cfg.stripe_resources_except("account")),
        cfg.StripeKey(cfg.live_stripe_key(), acme),
        cfg.StripeKey(cfg.SAMPLE_STRIPE_OTHER_ACCOUNT_KEY, cfg.SAMPLE_STRIPE_OTHER_ACCOUNT_ID),
    ]


def _collections(data: Mapping[str, list[Obj]]) -> dict[str, Collection]:
    return {name: Collection(name, data.get(name, []), sort_fields=("created",)) for name in LISTS}


def key_from_request(request: Request) -> str | None:
    """The API key from `Authorization: Bearer <key>` or HTTP Basic with the key as user name."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if not value:
        return None
    if scheme.lower() == "bearer":
        return value
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[0] or None
    return None


class StripeSandbox:
    """Everything one fake Stripe knows; also the `ProcessorHooks` of its control API."""

    def __init__(
        self,
        accounts: Sequence[cfg.StripeAccount],
        keys: Sequence[cfg.StripeKey],
        *,
        platform: cfg.StripePlatform,
        rate_limits: cfg.StripeRateLimits,
        latency_s: float,
        clock: Callable[[], float],
        event_clock: SandboxClock | None = None,
    ) -> None:
        if not accounts:
            raise ValueError("the fake Stripe needs at least one account")
        self.platform = platform
        self.accounts: dict[str, AccountState] = {
            a.id: AccountState(a, _collections(a.data)) for a in accounts
        }
        if platform.account_id not in self.accounts:
            own = cfg.StripeAccount(platform.account_id, platform.name, "platform@example.com")
            self.accounts[platform.account_id] = AccountState(own, _collections({}), platform=True)
        self.connectable = [a.id for a in accounts if a.id != platform.account_id]
        self.keys: dict[str, cfg.StripeKey] = {k.key: k for k in keys}
        unknown = {k.account_id for k in keys} - set(self.accounts)
        if unknown:
            raise ValueError(f"keys for unknown accounts: {sorted(unknown)}")
        self.clock = clock
        self._initial_settings = StripeSettings(latency_s, rate_limits)
        self.settings = self._initial_settings
        self._limiters: dict[tuple[str, str], RateLimiter] = {}
        self.oauth = ConnectOAuth(platform)
        self.control = SandboxControl(self, request_id_header="Request-Id")
        self.changes = StripeChanges(
            lambda account_id: self.accounts[account_id].collections, clock=event_clock
        )
        self.revoked_keys: set[str] = set()
        #: Keys made by rolling (`POST /_sandbox/keys/roll`): forgotten again on reset.
        self.rolled_keys: set[str] = set()
        #: Saved answers of idempotent writes (see `sandbox.fake_stripe.writes`).
        self.idempotency = IdempotencyKeys()

    def record_change(
        self,
        account_id: str,
        resource: str,
        obj: Obj,
        *,
        created: bool,
        request: RequestInfo | None = None,
    ) -> None:
        """An API write changed (or created) an object: stored, with its event and webhooks."""
        self.changes.record_change(
            account_id, resource, obj, previous=None if created else UNSET, request=request
        )

    @property
    def primary_account_id(self) -> str:
        return self.connectable[0] if self.connectable else self.platform.account_id

    def collection(self, account_id: str | None, resource: str) -> Collection:
        """A resource of an account (the primary one by default), for tests in this process."""
        return self.accounts[account_id or self.primary_account_id].collections[resource]

    # --- ProcessorHooks ---------------------------------------------------------------------
    def error_body(self, status: int, message: str | None, path: str) -> dict[str, Any]:
        return injected_error(status, message)

    def fault_headers(self, spec: FaultSpec) -> dict[str, str]:
        if spec.should_retry is None:
            return {}
        return {"stripe-should-retry": "true" if spec.should_retry else "false"}

    def api_path(self, path: str) -> str:
        return path

    def delete_objects(self, scope: str | None, resource: str, ids: list[str]) -> dict[str, Any]:
        account = self.accounts.get(scope or self.primary_account_id)
        if account is None:
            raise KeyError(f"no such account: {scope}")
        if resource not in account.collections:
            raise KeyError(f"no such resource: {resource}")
        deleted = [
            object_id
            for object_id in ids
            if self.changes.record_deletion(account.account.id, resource, object_id) is not None
        ]
        return {"deleted": deleted, "missing": [i for i in ids if i not in deleted]}

    def current_settings(self) -> dict[str, Any]:
        limits = self.settings.rate_limits
        return {
            "latency_s": self.settings.latency_s,
            "rate_limits": {
                "live": {
                    "global_per_s": limits.live.global_per_s,
                    "endpoint_per_s": limits.live.endpoint_per_s,
                },
                "test": {
                    "global_per_s": limits.test.global_per_s,
                    "endpoint_per_s": limits.test.endpoint_per_s,
                },
                "retry_after_s": limits.retry_after_s,
            },
        }

    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        unknown = set(changes) - {"latency_s", "rate_limits"}
        if unknown:
            raise KeyError(f"unknown settings: {sorted(unknown)}")
        latency = float(changes.get("latency_s", self.settings.latency_s))
        if latency < 0:
            raise ValueError("latency_s must be >= 0")
        limits = self.settings.rate_limits
        raw = changes.get("rate_limits")
        if raw is not None:
            limits = cfg.StripeRateLimits(
                live=replace(limits.live, **raw.get("live", {})),
                test=replace(limits.test, **raw.get("test", {})),
                retry_after_s=raw.get("retry_after_s", limits.retry_after_s),
            )
        self.settings = StripeSettings(latency, limits)
        self._limiters.clear()
        return self.current_settings()

    def reset_data(self) -> None:
        for account in self.accounts.values():
            for collection in account.collections.values():
                collection.reset()
        self.settings = self._initial_settings
        self._limiters.clear()
        self.idempotency.clear()
        self.changes.reset()
        self.revoked_keys.clear()
        for key in self.rolled_keys:
            self.keys.pop(key, None)
        self.rolled_keys.clear()

    # --- authentication and limits ------------------------------------------------------------
    def _owner(self, key: str) -> tuple[str, str, frozenset[str] | None]:
        """(account id, mode, allowed resources) of a key, or StripeError 401."""
        if key in self.revoked_keys:
            raise StripeError(401, f"Invalid API Key provided: {mask_key(key)}")
        known = self.keys.get(key)
        if known is not None:
            return known.account_id, known.mode, known.resources
        if key in self.platform.secret_keys:
            return self.platform.account_id, ("live" if key.startswith("sk_live_") else "test"), None
        grant = self.oauth.access_tokens.get(key)
        if grant is not None:
            return grant.account_id, ("live" if grant.livemode else "test"), None
        raise StripeError(401, f"Invalid API Key provided: {mask_key(key)}")

    def authenticate(self, request: Request, resource: str) -> AuthContext:
        key = key_from_request(request)
        if key is None:
            raise StripeError(401, NO_KEY_MESSAGE)
        if key.startswith("pk_"):
            raise StripeError(401, PUBLISHABLE_KEY_MESSAGE)
        account_id, mode, allowed = self._owner(key)
        on_behalf = request.headers.get("stripe-account")
        if on_behalf and on_behalf != account_id:
            if account_id != self.platform.account_id or on_behalf not in self.oauth.connected:
                raise StripeError(
                    403,
                    f"The provided key '{mask_key(key)}' does not have access to account '{on_behalf}' "
                    "(or that account does not exist). Application access may have been revoked.",
                    code="account_invalid",
                )
            account_id = on_behalf
        if allowed is not None and resource not in allowed:
            permission = PERMISSIONS.get(resource, f"rak_{resource}_read")
            raise StripeError(
                403,
                f"The provided key '{mask_key(key)}' does not have the required permissions for this "
                f"endpoint on account '{account_id}'. Having the '{permission}' permission would allow "
                "this request to continue.",
            )
        self.control.stats.by_scope[account_id] += 1
        return AuthContext(key, mode, self.accounts[account_id])

    def _limiter(self, mode: str, kind: str) -> RateLimiter | None:
        limits = self.settings.rate_limits.live if mode == "live" else self.settings.rate_limits.test
        rate = limits.global_per_s if kind == "global" else limits.endpoint_per_s
        if rate is None:
            return None
        limiter = self._limiters.get((mode, kind))
        if limiter is None:
            limiter = self._limiters[(mode, kind)] = RateLimiter(rate, clock=self.clock)
        return limiter

    def check_rate(self, ctx: AuthContext, endpoint: str) -> None:
        """Per account: a global bucket and one per endpoint; a refusal is Stripe's 429."""
        account_id = ctx.account.account.id
        buckets: list[tuple[str, TokenBucket]] = []
        global_limiter = self._limiter(ctx.mode, "global")
        if global_limiter is not None:
            buckets.append(("global-rate", global_limiter.bucket(account_id)))
        endpoint_limiter = self._limiter(ctx.mode, "endpoint")
        if endpoint_limiter is not None:
            buckets.append(("endpoint-rate", endpoint_limiter.bucket((account_id, endpoint))))
        refused = admit(buckets)
        if refused is None:
            return
        reason = refused[0]
        stats = self.control.stats
        stats.rate_limited += 1
        stats.rate_limited_by_reason[reason] += 1
        headers = {"Stripe-Should-Retry": "true", "Stripe-Rate-Limited-Reason": reason}
        retry_after = self.settings.rate_limits.retry_after_s
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        raise StripeError(429, RATE_LIMIT_MESSAGE, code="rate_limit", headers=headers)
