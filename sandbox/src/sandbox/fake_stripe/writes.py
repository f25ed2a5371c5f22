"""The fake Stripe's writes for churn-prevention offers: `POST /v1/coupons`, `POST /v1/subscriptions/{id}`.

As Stripe does: form-encoded parameters (unknown ones refused), its error shapes, the
`Idempotency-Key` header (same key and parameters: the saved answer with `Idempotent-Replayed:
true`; other parameters: 400 `idempotency_error`), and writes refused to keys that may only read
(a restricted `rk_` key of the sample set, an OAuth token granted `read_only`).
"""

from __future__ import annotations

import re
import secrets
import string
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.collection import Obj
from sandbox.fake_stripe.errors import StripeError, mask_key
from sandbox.fake_stripe.lists import expand, resolver_for
from sandbox.fake_stripe.state import AuthContext, StripeSandbox
from sandbox.idempotency import SavedAnswer, fingerprint

#: Stripe refuses a trial end further than this in the future.
MAX_TRIAL_END_S = 730 * 86_400
MAX_IDEMPOTENCY_KEY_CHARS = 255
ISO_CURRENCIES = frozenset(
    [
        "aed",
        "aud",
        "brl",
        "cad",
        "chf",
        "cny",
        "czk",
        "dkk",
        "eur",
        "gbp",
        "hkd",
        "huf",
        "ils",
        "inr",
        "jpy",
        "krw",
        "mxn",
        "nok",
        "nzd",
        "pln",
        "sek",
        "sgd",
        "thb",
        "try",
        "usd",
        "zar",
    ]
)
PRORATION_BEHAVIORS = ("create_prorations", "none", "always_invoice")
ENDED_STATUSES = ("canceled", "incomplete_expired")
WRITE_PERMISSIONS = {"coupons": "rak_coupon_write", "subscriptions": "rak_subscription_write"}

_EXPAND = re.compile(r"expand\[\d*\]")
Params = list[tuple[str, str]]
Handler = Callable[[AuthContext, dict[str, str], str], Awaitable[Obj]]


def install_stripe_writes(app: FastAPI, sandbox: StripeSandbox, respond: Callable[..., Response]) -> None:
    """Add the write routes; `respond(request, body, status, headers)` renders Stripe's JSON."""
    saved = sandbox.idempotency

    async def write(
        request: Request, resource: str, endpoint: str, handler: Handler, object_id: str
    ) -> Response:
        ctx = _writer(sandbox, request, resource)
        sandbox.check_rate(ctx, endpoint)
        params: Params = [(k, str(v)) for k, v in (await request.form()).multi_items()]
        key = request.headers.get("idempotency-key")
        scope = ctx.account.account.id
        print_ = fingerprint("POST", request.url.path, params)
        if key is not None:
            if not key or len(key) > MAX_IDEMPOTENCY_KEY_CHARS:
                raise StripeError(
                    400,
                    f"Idempotency-Key must be between 1 and {MAX_IDEMPOTENCY_KEY_CHARS} characters.",
                    type_="idempotency_error",
                )
            known = saved.lookup(scope, key)
            if known is not None:
                if known.fingerprint != print_:
                    raise StripeError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters they "
                        f"were first used with. Try using a key other than '{key}' if you meant to "
                        "execute a different request.",
                        type_="idempotency_error",
                    )
                return respond(request, known.body, known.status, {"Idempotent-Replayed": "true"})
        paths = [v for k, v in params if _EXPAND.fullmatch(k)]
        try:
            body = await handler(ctx, {k: v for k, v in params if not _EXPAND.fullmatch(k)}, object_id)
            if paths:
                body = expand(body, paths, resolver_for(ctx.account.collections), in_list=False)
            status = 200
        except StripeError as error:
            if error.status >= 500 or error.status == 429 or error.code != "resource_missing":
                raise  # validation failures and throttling are not saved, as at Stripe
            body, status = error.body(), error.status
        if key is not None:
            saved.save(scope, key, SavedAnswer(print_, status, body))
        headers = {"Idempotency-Key": key} if key is not None else {}
        return respond(request, body, status, headers)

    async def create_coupon_route(request: Request) -> Response:
        return await write(
            request, "coupons", "/v1/coupons", lambda c, p, _: _create_coupon(sandbox, c, p), ""
        )

    async def update_subscription_route(request: Request, subscription_id: str) -> Response:
        return await write(
            request,
            "subscriptions",
            "/v1/subscriptions/{id}",
            lambda c, p, i: _update_subscription(sandbox, c, p, i),
            subscription_id,
        )

    app.add_api_route("/v1/coupons", create_coupon_route, methods=["POST"], name="create_coupon")
    app.add_api_route(
        "/v1/subscriptions/{subscription_id}",
        update_subscription_route,
        methods=["POST"],
        name="update_subscription",
    )


def _writer(sandbox: StripeSandbox, request: Request, resource: str) -> AuthContext:
    """Authenticate as for a read, then refuse keys and grants that may only read."""
    ctx = sandbox.authenticate(request, resource)
    known = sandbox.keys.get(ctx.key)
    grant = sandbox.oauth.access_tokens.get(ctx.key)
    read_only = (known is not None and known.restricted) or (
        grant is not None and grant.scope != "read_write"
    )
    if read_only:
        permission = WRITE_PERMISSIONS.get(resource, f"rak_{resource}_write")
        raise StripeError(
            403,
            f"The provided key '{mask_key(ctx.key)}' does not have the required permissions for this "
            f"endpoint on account '{ctx.account.account.id}'. Having the '{permission}' permission would "
            "allow this request to continue.",
        )
    return ctx


def _unknown(params: dict[str, str], allowed: set[str]) -> None:
    for name in params:
        if name not in allowed and not name.startswith("metadata["):
            raise StripeError(400, f"Received unknown parameter: {name}", param=name)


def _integer(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise StripeError(
            400, f"Invalid integer: {raw}", code="parameter_invalid_integer", param=name
        ) from None


def _random_id(length: int = 8) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


async def _create_coupon(sandbox: StripeSandbox, ctx: AuthContext, params: dict[str, str]) -> Obj:
    _unknown(
        params,
        {
            "id",
            "name",
            "percent_off",
            "amount_off",
            "currency",
            "duration",
            "duration_in_months",
            "max_redemptions",
            "redeem_by",
        },
    )
    coupons = ctx.account.collections["coupons"]
    coupon_id = params.get("id") or _random_id()
    if coupons.get(coupon_id) is not None:
        raise StripeError(400, "Coupon already exists.", code="resource_already_exists", param="id")
    percent_raw, amount_off = params.get("percent_off"), _integer(params, "amount_off")
    if (percent_raw is None) == (amount_off is None):
        raise StripeError(
            400,
            "You must pass exactly one of percent_off or amount_off.",
            code="parameter_missing",
            param="percent_off",
        )
    percent_off: float | None = None
    if percent_raw is not None:
        try:
            percent_off = float(percent_raw)
        except ValueError:
            raise StripeError(
                400, f"Invalid decimal: {percent_raw}", code="parameter_invalid_decimal", param="percent_off"
            ) from None
        if not 0 < percent_off <= 100:
            raise StripeError(
                400,
                "Invalid percent_off: must be greater than 0 and at most 100.",
                code="parameter_invalid_decimal",
                param="percent_off",
            )
    currency = params.get("currency")
    if amount_off is not None:
        if amount_off <= 0:
            raise StripeError(
                400,
                "Invalid amount_off: must be positive.",
                code="parameter_invalid_integer",
                param="amount_off",
            )
        if not currency:
            raise StripeError(
                400,
                "You must pass currency when passing amount_off.",
                code="parameter_missing",
                param="currency",
            )
        if currency.lower() not in ISO_CURRENCIES:
            raise StripeError(
                400, f"Invalid currency: {currency}.", code="parameter_invalid_string", param="currency"
            )
    duration = params.get("duration", "once")
    if duration not in ("once", "repeating", "forever"):
        raise StripeError(
            400,
            f"Invalid duration: must be one of once, repeating, or forever (got {duration}).",
            code="parameter_invalid_string",
            param="duration",
        )
    months = _integer(params, "duration_in_months")
    if duration == "repeating" and (months is None or months < 1):
        raise StripeError(
            400,
            "You must pass a positive duration_in_months when duration is repeating.",
            code="parameter_missing",
            param="duration_in_months",
        )
    if duration != "repeating" and months is not None:
        raise StripeError(
            400,
            "duration_in_months can only be set when duration is repeating.",
            code="parameter_unknown",
            param="duration_in_months",
        )
    now = int(time.time())
    coupon: Obj = {
        "id": coupon_id,
        "object": "coupon",
        "amount_off": amount_off,
        "created": now,
        "currency": currency.lower() if amount_off is not None and currency else None,
        "duration": duration,
        "duration_in_months": months,
        "livemode": ctx.mode == "live",
        "max_redemptions": _integer(params, "max_redemptions"),
        "metadata": {},
        "name": params.get("name"),
        "percent_off": percent_off,
        "redeem_by": _integer(params, "redeem_by"),
        "times_redeemed": 0,
        "valid": True,
    }
    sandbox.record_change(ctx.account.account.id, "coupons", coupon, created=True)
    return coupon


async def _update_subscription(
    sandbox: StripeSandbox, ctx: AuthContext, params: dict[str, str], subscription_id: str
) -> Obj:
    subscription = ctx.account.collections["subscriptions"].get(subscription_id)
    if subscription is None:
        raise StripeError(
            404, f"No such subscription: '{subscription_id}'", code="resource_missing", param="id"
        )
    _unknown(
        params,
        {
            "coupon",
            "discounts[0][coupon]",
            "trial_end",
            "proration_behavior",
            "cancel_at_period_end",
            "description",
        },
    )
    if subscription.get("status") in ENDED_STATUSES:
        raise StripeError(
            400,
            "A canceled subscription can only update its cancellation_details and metadata.",
        )
    proration = params.get("proration_behavior")
    if proration is not None and proration not in PRORATION_BEHAVIORS:
        raise StripeError(
            400,
            f"Invalid proration_behavior: must be one of {', '.join(PRORATION_BEHAVIORS)}.",
            code="parameter_invalid_string",
            param="proration_behavior",
        )
    updated = dict(subscription)
    now = int(time.time())
    coupon_param = "discounts[0][coupon]" if "discounts[0][coupon]" in params else "coupon"
    coupon_id = params.get(coupon_param)
    if coupon_id:
        coupon = ctx.account.collections["coupons"].get(coupon_id)
        if coupon is None or not coupon.get("valid", True):
            raise StripeError(
                400, f"No such coupon: '{coupon_id}'", code="resource_missing", param=coupon_param
            )
        discount_id = "di_" + _random_id(24)
        updated["discount"] = {
            "id": discount_id,
            "object": "discount",
            "checkout_session": None,
            "coupon": coupon,
            "customer": subscription.get("customer"),
            "end": None,
            "invoice": None,
            "invoice_item": None,
            "promotion_code": None,
            "start": now,
            "subscription": subscription_id,
            "subscription_item": None,
        }
        updated["discounts"] = [discount_id]
    if "trial_end" in params:
        raw = params["trial_end"]
        trial_end = now if raw == "now" else _integer(params, "trial_end")
        assert trial_end is not None
        if raw != "now" and not now < trial_end <= now + MAX_TRIAL_END_S:
            raise StripeError(
                400,
                "Invalid timestamp: must be an integer Unix timestamp in the future and at most two "
                "years from now.",
                code="parameter_invalid_integer",
                param="trial_end",
            )
        updated["trial_end"] = trial_end
        updated["status"] = "trialing" if trial_end > now else "active"
        if subscription.get("status") != "trialing":
            updated["trial_start"] = now
        updated["current_period_end"] = trial_end
        updated["billing_cycle_anchor"] = trial_end
        items = updated.get("items")
        if isinstance(items, dict):
            updated["items"] = {
                **items,
                "data": [{**item, "current_period_end": trial_end} for item in items.get("data", [])],
            }
    sandbox.record_change(ctx.account.account.id, "subscriptions", updated, created=False)
    return updated
