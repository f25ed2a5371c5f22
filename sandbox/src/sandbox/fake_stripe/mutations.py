"""Changes made through the fake Stripe's control API, as a dashboard user would make them.

Each recorded with `StripeChanges`, so they produce the events Stripe produces: a deleted customer
cancels its live subscriptions first (`customer.subscription.deleted` each, then
`customer.deleted`); cancelling a subscription now is `customer.subscription.deleted` (the
subscription stays retrievable, `status: canceled`); cancelling at period end and undoing that
are `customer.subscription.updated`; paying an invoice is `invoice.updated`, `invoice.paid`,
`invoice.payment_succeeded` (each failed attempt first: `invoice.updated`,
`invoice.payment_failed`).
"""

from __future__ import annotations

import copy
import secrets
import string
from typing import TYPE_CHECKING, Any

from sandbox import config as cfg
from sandbox.admin_changes import AdminError, CancelRequest, PayRequest, Touched, TouchRequest
from sandbox.collection import Collection, Obj
from sandbox.data.model import add_interval
from sandbox.events import SandboxClock
from sandbox.fake_stripe.changes import EVENT_PREFIX, StripeChanges

if TYPE_CHECKING:
    from sandbox.fake_stripe.state import StripeSandbox

_ALNUM = string.ascii_letters + string.digits
ENDED = frozenset({"canceled", "incomplete_expired"})
ID_PREFIX = {
    "customers": "cus_",
    "subscriptions": "sub_",
    "invoices": "in_",
    "prices": "price_",
    "products": "prod_",
    "plans": "plan_",
}


def random_id(prefix: str, length: int = 14) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


class StripeObjectAdmin:
    """`ObjectAdmin` of the fake Stripe."""

    def __init__(self, sandbox: StripeSandbox) -> None:
        self.sandbox = sandbox
        self._livemodes: dict[str, bool] = {}

    @property
    def changes(self) -> StripeChanges:
        return self.sandbox.changes

    @property
    def clock(self) -> SandboxClock:
        return self.sandbox.changes.clock

    def _now(self) -> int:
        return int(self.clock.now())

    def _account(self, scope: str | None) -> str:
        account_id = scope or self.sandbox.primary_account_id
        if account_id not in self.sandbox.accounts:
            raise KeyError(f"no such account: {account_id}")
        return account_id

    def _collection(self, account_id: str, resource: str) -> Collection:
        if resource not in EVENT_PREFIX:
            raise KeyError(f"no such resource: {resource} (one of {', '.join(EVENT_PREFIX)})")
        return self.sandbox.accounts[account_id].collections[resource]

    def _get(self, account_id: str, resource: str, object_id: str) -> Obj:
        found = self._collection(account_id, resource).get(object_id)
        if found is None:
            raise KeyError(f"no such {resource[:-1]}: {object_id}")
        return found

    def _livemode(self, account_id: str) -> bool:
        known = self._livemodes.get(account_id)
        if known is None:
            known = False
            for collection in self.sandbox.accounts[account_id].collections.values():
                for obj in collection.view("created").items[:1]:
                    known = bool(obj.get("livemode", False))
            self._livemodes[account_id] = known
        return known

    def admin_touch(self, scope: str | None, resource: str, request: TouchRequest) -> list[Touched]:
        account_id = self._account(scope)
        collection = self._collection(account_id, resource)
        ids = [str(o["id"]) for o in collection.view("created").items[::-1]]
        if not ids:
            raise AdminError(422, f"no {resource} to change")
        done: list[Touched] = []
        for n in range(request.count):
            object_id = ids[n % len(ids)]
            current = collection.get(object_id)
            if current is None:
                continue
            metadata = {**(current.get("metadata") or {}), "sandbox_touch": str(n)}
            after = {**current, **copy.deepcopy(request.changes), "metadata": metadata}
            if request.mark:
                after[request.mark] = str(n)
            event = self.changes.record_change(account_id, resource, after)
            done.append(Touched(object_id, str(event["id"])))
        return done

    # --- create / update / delete ------------------------------------------------------------
    def admin_create(
        self, scope: str | None, resource: str, fields: Obj, like: str | None
    ) -> tuple[Obj, list[Obj]]:
        account_id = self._account(scope)
        collection = self._collection(account_id, resource)
        now = self._now()
        if like is not None:
            base = copy.deepcopy(self._get(account_id, resource, like))
            base["id"] = (
                random_id(ID_PREFIX.get(resource, ""), 14) if resource != "coupons" else random_id("", 8)
            )
            base["created"] = now
        else:
            base = self._template(account_id, resource, fields, now)
        obj = {**base, **fields}
        if collection.get(str(obj["id"])) is not None or collection.removed(str(obj["id"])) is not None:
            raise AdminError(409, f"{resource[:-1]} {obj['id']} already exists")
        event = self.changes.record_change(account_id, resource, obj, previous=None)
        return obj, [event]

    def admin_update(
        self, scope: str | None, resource: str, object_id: str, changes: Obj, event_type: str | None
    ) -> tuple[Obj, list[Obj]]:
        account_id = self._account(scope)
        before = self._get(account_id, resource, object_id)
        if "id" in changes and changes["id"] != object_id:
            raise AdminError(422, "the id of an object cannot change")
        after = {**before, **copy.deepcopy(changes)}
        if resource == "products":
            after["updated"] = self._now()
        event = self.changes.record_change(account_id, resource, after, event_type=event_type)
        return after, [event]

    def admin_delete(self, scope: str | None, resource: str, object_id: str) -> tuple[Obj, list[Obj]]:
        account_id = self._account(scope)
        obj = self._get(account_id, resource, object_id)
        if resource == "subscriptions":  # Stripe's DELETE /v1/subscriptions/{id} cancels it now
            return self.admin_cancel(account_id, object_id, CancelRequest())
        events: list[Obj] = []
        if resource == "customers":
            subscriptions = self._collection(account_id, "subscriptions")
            live = [s for s in subscriptions.view("created").items if s.get("customer") == object_id]
            for sub in live:
                if sub.get("status") not in ENDED:
                    events += self._cancel_now(account_id, sub, CancelRequest())[1]
        deleted = self.changes.record_deletion(account_id, resource, object_id)
        assert deleted is not None
        events.append(deleted)
        return obj, events

    # --- subscriptions -----------------------------------------------------------------------
    def admin_cancel(
        self, scope: str | None, object_id: str, request: CancelRequest
    ) -> tuple[Obj, list[Obj]]:
        account_id = self._account(scope)
        sub = self._get(account_id, "subscriptions", object_id)
        if sub.get("status") in ENDED:
            raise AdminError(400, f"subscription {object_id} is already {sub.get('status')}")
        if request.at_period_end:
            now = self._now()
            after = {
                **sub,
                "cancel_at_period_end": True,
                "cancel_at": sub.get("current_period_end"),
                "canceled_at": now,
                "cancellation_details": self._details(request),
            }
            event = self.changes.record_change(account_id, "subscriptions", after)
            return after, [event]
        return self._cancel_now(account_id, sub, request)

    def _details(self, request: CancelRequest) -> Obj:
        return {
            "comment": request.comment,
            "feedback": request.feedback,
            "reason": request.reason or "cancellation_requested",
        }

    def _cancel_now(self, account_id: str, sub: Obj, request: CancelRequest) -> tuple[Obj, list[Obj]]:
        now = self._now()
        after = {
            **sub,
            "status": "canceled",
            "canceled_at": sub.get("canceled_at") if sub.get("cancel_at_period_end") else now,
            "ended_at": now,
            "cancel_at": None,
            "cancel_at_period_end": False,
            "cancellation_details": self._details(request),
        }
        if after["canceled_at"] is None:
            after["canceled_at"] = now
        event = self.changes.record_change(
            account_id, "subscriptions", after, event_type="customer.subscription.deleted"
        )
        return after, [event]

    def admin_reactivate(self, scope: str | None, object_id: str) -> tuple[Obj, list[Obj]]:
        """Undo a cancellation scheduled for the period end (Stripe cannot revive a canceled one)."""
        account_id = self._account(scope)
        sub = self._get(account_id, "subscriptions", object_id)
        if sub.get("status") in ENDED:
            raise AdminError(
                400,
                "A canceled subscription can only update its cancellation_details and metadata: "
                "Stripe cannot reactivate it (create a new subscription instead).",
            )
        if not sub.get("cancel_at_period_end") and sub.get("cancel_at") is None:
            raise AdminError(400, f"subscription {object_id} has no scheduled cancellation")
        after = {
            **sub,
            "cancel_at_period_end": False,
            "cancel_at": None,
            "canceled_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        }
        event = self.changes.record_change(account_id, "subscriptions", after)
        return after, [event]

    # --- invoices ----------------------------------------------------------------------------
    def admin_pay(self, scope: str | None, object_id: str, request: PayRequest) -> tuple[Obj, list[Obj]]:
        account_id = self._account(scope)
        invoice = self._get(account_id, "invoices", object_id)
        if invoice.get("status") in ("paid", "void"):
            raise AdminError(400, f"invoice {object_id} is {invoice.get('status')}: nothing to pay")
        events: list[Obj] = []
        now = self._now()
        transitions = dict(invoice.get("status_transitions") or {})
        if transitions.get("finalized_at") is None:
            transitions["finalized_at"] = now
        for _ in range(request.failed_attempts):
            invoice = {
                **invoice,
                "status": "open",
                "attempted": True,
                "attempt_count": int(invoice.get("attempt_count") or 0) + 1,
                "next_payment_attempt": now + 3 * 86_400,
                "status_transitions": transitions,
            }
            events.append(self.changes.record_change(account_id, "invoices", invoice))
            events.append(self.changes.record_event(account_id, "invoice.payment_failed", invoice))
            events += self._set_subscription_status(account_id, invoice, "past_due")
        if not request.succeed:
            return invoice, events
        due = int(invoice.get("amount_due") or 0)
        invoice = {
            **invoice,
            "status": "paid",
            "paid": True,
            "attempted": True,
            "attempt_count": int(invoice.get("attempt_count") or 0) + 1,
            "amount_paid": due,
            "amount_remaining": 0,
            "next_payment_attempt": None,
            "status_transitions": {**transitions, "paid_at": now},
        }
        events.append(self.changes.record_change(account_id, "invoices", invoice))
        events.append(self.changes.record_event(account_id, "invoice.paid", invoice))
        events.append(self.changes.record_event(account_id, "invoice.payment_succeeded", invoice))
        events += self._set_subscription_status(account_id, invoice, "active")
        return invoice, events

    def _set_subscription_status(self, account_id: str, invoice: Obj, status: str) -> list[Obj]:
        """A failed payment makes the subscription past_due; paying its latest invoice reactivates it."""
        sub_id = invoice.get("subscription")
        sub = self._collection(account_id, "subscriptions").get(str(sub_id)) if sub_id else None
        if sub is None or sub.get("status") in ENDED or sub.get("status") == status:
            return []
        if status == "active" and sub.get("status") not in ("past_due", "unpaid"):
            return []
        if status == "past_due" and sub.get("status") not in ("active", "trialing"):
            return []
        return [self.changes.record_change(account_id, "subscriptions", {**sub, "status": status})]

    # --- new objects -------------------------------------------------------------------------
    def _template(self, account_id: str, resource: str, fields: Obj, now: int) -> Obj:
        livemode = self._livemode(account_id)
        common: Obj = {"created": now, "livemode": livemode, "metadata": {}}
        if resource == "customers":
            return {
                "id": random_id("cus_"),
                "object": "customer",
                "address": None,
                "balance": 0,
                **common,
                "currency": None,
                "default_source": None,
                "delinquent": False,
                "description": None,
                "discount": None,
                "email": None,
                "invoice_prefix": random_id("", 8).upper(),
                "invoice_settings": {
                    "custom_fields": None,
                    "default_payment_method": None,
                    "footer": None,
                    "rendering_options": None,
                },
                "name": None,
                "next_invoice_sequence": 1,
                "phone": None,
                "preferred_locales": [],
                "shipping": None,
                "tax_exempt": "none",
                "test_clock": None,
            }
        if resource == "products":
            return {
                "id": random_id("prod_"),
                "object": "product",
                "active": True,
                **common,
                "default_price": None,
                "description": None,
                "images": [],
                "marketing_features": [],
                "name": "New product",
                "package_dimensions": None,
                "shippable": None,
                "statement_descriptor": None,
                "tax_code": None,
                "type": "service",
                "unit_label": None,
                "updated": now,
                "url": None,
            }
        if resource == "coupons":
            return {
                "id": random_id("", 8),
                "object": "coupon",
                "amount_off": None,
                **common,
                "currency": None,
                "duration": "once",
                "duration_in_months": None,
                "max_redemptions": None,
                "name": None,
                "percent_off": None if fields.get("amount_off") is not None else 10.0,
                "redeem_by": None,
                "times_redeemed": 0,
                "valid": True,
            }
        if resource in ("prices", "plans"):
            return self._price_template(account_id, resource, fields, common)
        if resource == "subscriptions":
            return self._subscription_template(account_id, fields, common, now)
        if resource == "invoices":
            return self._invoice_template(account_id, fields, common, now)
        raise KeyError(f"no such resource: {resource}")

    def _price_template(self, account_id: str, resource: str, fields: Obj, common: Obj) -> Obj:
        product = fields.get("product")
        if not product:
            raise AdminError(422, f"a new {resource[:-1]} needs a product")
        self._get(account_id, "products", str(product))
        amount = int(fields.get("unit_amount") or fields.get("amount") or 1_000)
        interval = str(fields.get("interval") or "month")
        if resource == "plans":
            return {
                "id": random_id("plan_"),
                "object": "plan",
                "active": True,
                "aggregate_usage": None,
                "amount": amount,
                "amount_decimal": str(amount),
                "billing_scheme": "per_unit",
                **common,
                "currency": "usd",
                "interval": interval,
                "interval_count": 1,
                "meter": None,
                "nickname": None,
                "product": product,
                "tiers_mode": None,
                "transform_usage": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            }
        return {
            "id": random_id("price_", 24),
            "object": "price",
            "active": True,
            "billing_scheme": "per_unit",
            **common,
            "currency": "usd",
            "custom_unit_amount": None,
            "lookup_key": None,
            "nickname": None,
            "product": product,
            "recurring": {
                "aggregate_usage": None,
                "interval": interval,
                "interval_count": 1,
                "meter": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            },
            "tax_behavior": "unspecified",
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "recurring",
            "unit_amount": amount,
            "unit_amount_decimal": str(amount),
        }

    def _subscription_template(self, account_id: str, fields: Obj, common: Obj, now: int) -> Obj:
        customer = fields.get("customer")
        price_id = fields.get("price")
        if not customer or not price_id:
            raise AdminError(422, "a new subscription needs a customer and a price (ids)")
        self._get(account_id, "customers", str(customer))
        price = self._get(account_id, "prices", str(price_id))
        plan = self._collection(account_id, "plans").get(str(price_id))
        recurring = price.get("recurring") or {"interval": "month", "interval_count": 1}
        end = add_interval(now, str(recurring["interval"]), int(recurring["interval_count"]))
        quantity = int(fields.get("quantity") or 1)
        sub_id = str(fields.get("id") or random_id("sub_", 24))
        item: Obj = {
            "id": random_id("si_"),
            "object": "subscription_item",
            "billing_thresholds": None,
            "created": now,
            "current_period_end": end,
            "current_period_start": now,
            "discounts": [],
            "metadata": {},
            "plan": plan,
            "price": price,
            "quantity": quantity,
            "subscription": sub_id,
            "tax_rates": [],
        }
        return {
            "id": sub_id,
            "object": "subscription",
            "application": None,
            "application_fee_percent": None,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": now,
            "billing_cycle_anchor_config": None,
            "billing_thresholds": None,
            "cancel_at": None,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "collection_method": "charge_automatically",
            **common,
            "currency": price.get("currency", "usd"),
            "current_period_end": end,
            "current_period_start": now,
            "customer": customer,
            "days_until_due": None,
            "default_payment_method": None,
            "default_source": None,
            "default_tax_rates": [],
            "description": None,
            "discount": None,
            "discounts": [],
            "ended_at": None,
            "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
            "items": {
                "object": "list",
                "data": [item],
                "has_more": False,
                "total_count": 1,
                "url": f"/v1/subscription_items?subscription={sub_id}",
            },
            "latest_invoice": None,
            "next_pending_invoice_item_invoice": None,
            "on_behalf_of": None,
            "pause_collection": None,
            "pending_invoice_item_interval": None,
            "pending_setup_intent": None,
            "pending_update": None,
            "plan": plan,
            "quantity": quantity,
            "schedule": None,
            "start_date": now,
            "status": "active",
            "test_clock": None,
            "transfer_data": None,
            "trial_end": None,
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "trial_start": None,
        }

    def _invoice_template(self, account_id: str, fields: Obj, common: Obj, now: int) -> Obj:
        customer_id = fields.get("customer")
        if not customer_id:
            raise AdminError(422, "a new invoice needs a customer (id)")
        customer = self._get(account_id, "customers", str(customer_id))
        sub_id = fields.get("subscription")
        sub = self._get(account_id, "subscriptions", str(sub_id)) if sub_id else None
        amount = int(fields.get("amount_due") or self._subscription_amount(sub))
        inv_id = str(fields.get("id") or random_id("in_", 24))
        currency = (sub or {}).get("currency") or customer.get("currency") or "usd"
        return {
            "id": inv_id,
            "object": "invoice",
            "account_country": "US",
            "account_name": self.sandbox.accounts[account_id].account.business_name,
            "amount_due": amount,
            "amount_paid": 0,
            "amount_remaining": amount,
            "amount_shipping": 0,
            "attempt_count": 0,
            "attempted": False,
            "auto_advance": True,
            "billing_reason": "subscription_cycle" if sub else "manual",
            "collection_method": "charge_automatically",
            **common,
            "currency": currency,
            "customer": customer_id,
            "customer_email": customer.get("email"),
            "customer_name": customer.get("name"),
            "description": None,
            "discount": None,
            "discounts": [],
            "due_date": None,
            "effective_at": now,
            "ending_balance": 0,
            "hosted_invoice_url": None,
            "invoice_pdf": None,
            "lines": {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": f"/v1/invoices/{inv_id}/lines",
            },
            "next_payment_attempt": None,
            "number": None,
            "paid": False,
            "paid_out_of_band": False,
            "parent": (
                {
                    "quote_details": None,
                    "subscription_details": {"metadata": {}, "subscription": sub_id},
                    "type": "subscription_details",
                }
                if sub_id
                else None
            ),
            "period_end": now,
            "period_start": now,
            "status": "open",
            "status_transitions": {
                "finalized_at": now,
                "marked_uncollectible_at": None,
                "paid_at": None,
                "voided_at": None,
            },
            "subscription": sub_id,
            "subtotal": amount,
            "tax": None,
            "total": amount,
            "total_discount_amounts": [],
            "total_excluding_tax": amount,
        }

    @staticmethod
    def _subscription_amount(sub: Obj | None) -> int:
        if sub is None:
            return 1_000
        total = 0
        for item in (sub.get("items") or {}).get("data", []):
            total += int((item.get("price") or {}).get("unit_amount") or 0) * int(item.get("quantity") or 1)
        return total or 1_000


def deauthorize_account(sandbox: StripeSandbox, account_id: str, *, revoke_keys: bool) -> Obj:
    """The account removed the platform's app: tokens die, `account.application.deauthorized`."""
    if account_id not in sandbox.accounts or account_id == sandbox.platform.account_id:
        raise KeyError(f"no such connected account: {account_id}")
    was_connected = account_id in sandbox.oauth.connected
    sandbox.oauth.deauthorize(account_id)
    if revoke_keys:
        sandbox.revoked_keys.update(k.key for k in sandbox.keys.values() if k.account_id == account_id)
    application: Any = {
        "id": sandbox.platform.client_id,
        "object": "application",
        "name": sandbox.platform.name,
    }
    event = sandbox.changes.record_event(account_id, "account.application.deauthorized", application)
    return {"account": account_id, "was_connected": was_connected, "event": event}


def roll_stripe_key(sandbox: StripeSandbox, old_key: str | None) -> Obj:
    """A new secret key of the same account replaces `old_key` (by default the primary account's
    first full key), as "Roll key" in the Dashboard does: the old key answers 401 from now on."""
    if old_key is None:
        old_key = next(
            (
                k.key
                for k in sandbox.keys.values()
                if k.account_id == sandbox.primary_account_id
                and k.resources is None
                and k.key.startswith("sk_")
                and k.key not in sandbox.revoked_keys
            ),
            None,
        )
    known = None if old_key is None else sandbox.keys.get(old_key)
    if old_key is None or known is None or old_key in sandbox.revoked_keys:
        raise KeyError("no such key")
    prefix = "_".join(old_key.split("_", 2)[:2]) + "_"
    alphabet = string.ascii_letters + string.digits
    new_key = prefix + "51Rolled" + "".join(secrets.choice(alphabet) for _ in range(40))
    sandbox.keys[new_key] = cfg.StripeKey(new_key, known.account_id, known.resources)
    sandbox.rolled_keys.add(new_key)
    sandbox.revoked_keys.add(old_key)
    return {"account": known.account_id, "key": new_key, "revoked": old_key[:12] + "…" + old_key[-4:]}
