"""Changes made through the fake Chargebee's control API, as a site admin would make them.

Each recorded with `ChargebeeChanges`, so they produce Chargebee's events: a deleted customer
deletes its subscriptions first (`subscription_deleted` each, then `customer_deleted`);
cancelling now is `subscription_cancelled`, at the end of the term
`subscription_cancellation_scheduled` (status `non_renewing`); reactivating a cancelled
subscription is `subscription_reactivated`, removing a scheduled cancellation
`subscription_scheduled_cancellation_removed`; paying an invoice is `invoice_updated` then
`payment_succeeded` (each failed attempt first: `invoice_updated`, `payment_failed`).
"""

from __future__ import annotations

import copy
import secrets
import string
from typing import TYPE_CHECKING

from sandbox import config as cfg
from sandbox.admin_changes import AdminError, CancelRequest, PayRequest, Touched, TouchRequest
from sandbox.collection import Collection, Obj
from sandbox.data.model import add_interval
from sandbox.events import SandboxClock
from sandbox.fake_chargebee.changes import EVENT_TYPES, OBJECT_NAMES, ChargebeeChanges, compact

if TYPE_CHECKING:
    from sandbox.fake_chargebee.state import ChargebeeSandbox, SiteState

_ALNUM = string.ascii_letters + string.digits
ENDED = frozenset({"cancelled", "transferred"})


def random_id(length: int = 16) -> str:
    return "Az" + "".join(secrets.choice(_ALNUM) for _ in range(length - 2))


class ChargebeeObjectAdmin:
    """`ObjectAdmin` of the fake Chargebee."""

    def __init__(self, sandbox: ChargebeeSandbox) -> None:
        self.sandbox = sandbox

    @property
    def changes(self) -> ChargebeeChanges:
        return self.sandbox.changes

    @property
    def clock(self) -> SandboxClock:
        return self.sandbox.changes.clock

    def _now(self) -> int:
        return int(self.clock.now())

    def _site(self, scope: str | None) -> str:
        site = scope or self.sandbox.primary_site
        if site not in self.sandbox.sites:
            raise KeyError(f"no such site: {site}")
        return site

    def _collection(self, site: str, resource: str) -> Collection:
        if resource not in EVENT_TYPES:
            raise KeyError(f"no such resource: {resource} (one of {', '.join(EVENT_TYPES)})")
        return self.sandbox.sites[site].collections[resource]

    def _get(self, site: str, resource: str, object_id: str) -> Obj:
        found = self._collection(site, resource).get(object_id)
        if found is None or found.get("deleted"):
            raise KeyError(f"no such {OBJECT_NAMES.get(resource, resource)}: {object_id}")
        return found

    # --- create / update / delete ------------------------------------------------------------
    def admin_create(
        self, scope: str | None, resource: str, fields: Obj, like: str | None
    ) -> tuple[Obj, list[Obj]]:
        site = self._site(scope)
        collection = self._collection(site, resource)
        now = self._now()
        if like is not None:
            base = copy.deepcopy(self._get(site, resource, like))
            base["id"] = random_id()
            for stamp in ("created_at", "date", "generated_at"):
                if stamp in base:
                    base[stamp] = now
        else:
            base = self._template(site, resource, fields, now)
        obj = {**base, **fields}
        if collection.get(str(obj["id"])) is not None:
            raise AdminError(409, f"{OBJECT_NAMES[resource]} {obj['id']} already exists")
        event = self.changes.record_change(site, resource, obj, previous=None)
        return self._collection(site, resource).get(str(obj["id"])) or obj, [event]

    def admin_update(
        self, scope: str | None, resource: str, object_id: str, changes: Obj, event_type: str | None
    ) -> tuple[Obj, list[Obj]]:
        site = self._site(scope)
        before = self._get(site, resource, object_id)
        if "id" in changes and changes["id"] != object_id:
            raise AdminError(422, "the id of an object cannot change")
        event = self.changes.record_change(
            site, resource, {**before, **copy.deepcopy(changes)}, event_type=event_type
        )
        return self._collection(site, resource).get(object_id) or before, [event]

    def admin_delete(self, scope: str | None, resource: str, object_id: str) -> tuple[Obj, list[Obj]]:
        site = self._site(scope)
        self._get(site, resource, object_id)
        events: list[Obj] = []
        if resource == "customers":
            subscriptions = self._collection(site, "subscriptions")
            owned = [s for s in subscriptions.view("created_at").items if s.get("customer_id") == object_id]
            for sub in owned:
                deleted_sub = self.changes.record_deletion(site, "subscriptions", str(sub["id"]))
                if deleted_sub is not None:
                    events.append(deleted_sub)
        deleted = self.changes.record_deletion(site, resource, object_id)
        assert deleted is not None
        events.append(deleted)
        collection = self._collection(site, resource)
        obj = collection.get(object_id) or collection.removed(object_id) or {}
        return obj, events

    def admin_touch(self, scope: str | None, resource: str, request: TouchRequest) -> list[Touched]:
        """Each change restamps `updated_at` / `resource_version` (plus `changes`), with its event."""
        site = self._site(scope)
        collection = self._collection(site, resource)
        spec_sort = "updated_at" if resource in ("plans", "addons", "items", "item_prices") else "created_at"
        sort = "date" if resource == "invoices" else spec_sort
        ids = [str(o["id"]) for o in collection.view(sort).items[::-1] if not o.get("deleted")]
        if not ids:
            raise AdminError(422, f"no {resource} to change")
        done: list[Touched] = []
        for n in range(request.count):
            object_id = ids[n % len(ids)]
            current = collection.get(object_id)
            if current is None or current.get("deleted"):
                continue
            after = {**current, **copy.deepcopy(request.changes)}
            if request.mark:
                after[request.mark] = str(n)
            event = self.changes.record_change(site, resource, after)
            done.append(Touched(object_id, str(event["id"])))
        return done

    # --- subscriptions -----------------------------------------------------------------------
    def admin_cancel(
        self, scope: str | None, object_id: str, request: CancelRequest
    ) -> tuple[Obj, list[Obj]]:
        site = self._site(scope)
        sub = self._get(site, "subscriptions", object_id)
        if sub.get("status") in ENDED:
            raise AdminError(400, f"subscription {object_id} is already {sub.get('status')}")
        now = self._now()
        reason = request.reason or "cancelled_by_admin"
        if request.at_period_end:
            end = sub.get("current_term_end") or now
            after = {
                **sub,
                "status": "non_renewing",
                "cancelled_at": end,
                "cancel_reason_code": reason,
                "next_billing_at": None,
            }
            kind = "subscription_cancellation_scheduled"
        else:
            after = {
                **sub,
                "status": "cancelled",
                "cancelled_at": now,
                "cancel_reason_code": reason,
                "next_billing_at": None,
                "current_term_start": None,
                "current_term_end": None,
                "mrr": 0,
            }
            kind = "subscription_cancelled"
        event = self.changes.record_change(site, "subscriptions", after, event_type=kind)
        return self._get(site, "subscriptions", object_id), [event]

    def admin_reactivate(self, scope: str | None, object_id: str) -> tuple[Obj, list[Obj]]:
        site = self._site(scope)
        sub = self._get(site, "subscriptions", object_id)
        status = sub.get("status")
        cleared = {"cancelled_at": None, "cancel_reason": None, "cancel_reason_code": None}
        if status == "cancelled":
            now = self._now()
            end = add_interval(
                now, str(sub.get("billing_period_unit") or "month"), int(sub.get("billing_period") or 1)
            )
            after = {
                **sub,
                **cleared,
                "status": "active",
                "activated_at": now,
                "current_term_start": now,
                "current_term_end": end,
                "next_billing_at": end,
            }
            kind = "subscription_reactivated"
        elif status == "non_renewing":
            after = {**sub, **cleared, "status": "active", "next_billing_at": sub.get("current_term_end")}
            kind = "subscription_scheduled_cancellation_removed"
        else:
            raise AdminError(400, f"subscription {object_id} is {status}: nothing to reactivate")
        event = self.changes.record_change(site, "subscriptions", after, event_type=kind)
        return self._get(site, "subscriptions", object_id), [event]

    # --- invoices ----------------------------------------------------------------------------
    def _payment_content(self, site: str, invoice: Obj) -> Obj:
        content: Obj = {"invoice": invoice}
        customer = self._collection(site, "customers").get(str(invoice.get("customer_id", "")))
        if customer is not None:
            content["customer"] = customer
        sub = self._collection(site, "subscriptions").get(str(invoice.get("subscription_id", "")))
        if sub is not None:
            content["subscription"] = sub
        return content

    def admin_pay(self, scope: str | None, object_id: str, request: PayRequest) -> tuple[Obj, list[Obj]]:
        site = self._site(scope)
        invoices = self._collection(site, "invoices")
        invoice = self._get(site, "invoices", object_id)
        if invoice.get("status") in ("paid", "voided"):
            raise AdminError(400, f"invoice {object_id} is {invoice.get('status')}: nothing to pay")
        events: list[Obj] = []
        total = int(invoice.get("total") or 0)
        for _ in range(request.failed_attempts):
            now = self._now()
            attempts = [
                *invoice.get("dunning_attempts", []),
                {
                    "attempt": len(invoice.get("dunning_attempts", [])),
                    "created_at": now,
                    "dunning_type": "auto_collect",
                    "object": "dunning_attempt",
                },
            ]
            changed = {
                **invoice,
                "status": "payment_due",
                "dunning_status": "in_progress",
                "amount_due": total - int(invoice.get("amount_paid") or 0),
                "dunning_attempts": attempts,
            }
            events.append(self.changes.record_change(site, "invoices", changed))
            invoice = invoices.get(object_id) or changed
            events.append(
                self.changes.record_event(site, "payment_failed", self._payment_content(site, invoice))
            )
        if request.succeed:
            now = self._now()
            changed = {
                **invoice,
                "status": "paid",
                "paid_at": now,
                "amount_paid": total,
                "amount_due": 0,
                "amount_to_collect": 0,
                "dunning_status": None,
            }
            events.append(self.changes.record_change(site, "invoices", changed))
            invoice = invoices.get(object_id) or changed
            events.append(
                self.changes.record_event(site, "payment_succeeded", self._payment_content(site, invoice))
            )
        return invoice, events

    # --- new objects -------------------------------------------------------------------------
    def _template(self, site: str, resource: str, fields: Obj, now: int) -> Obj:
        pc2 = self.sandbox.sites[site].site.catalog_version == "2.0"
        if resource == "customers":
            return {
                "id": random_id(),
                "auto_collection": "on",
                "net_term_days": 0,
                "allow_direct_debit": False,
                "created_at": now,
                "taxability": "taxable",
                "pii_cleared": "active",
                "channel": "web",
                "deleted": False,
                "object": "customer",
                "card_status": "no_card",
                "promotional_credits": 0,
                "refundable_credits": 0,
                "excess_payments": 0,
                "unbilled_charges": 0,
                "preferred_currency_code": "USD",
                "mrr": 0,
            }
        if resource == "subscriptions":
            return self._subscription_template(site, fields, now, pc2=pc2)
        if resource == "invoices":
            return self._invoice_template(site, fields, now)
        if resource == "coupons":
            return {
                "id": "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(8)),
                "name": "New coupon",
                "discount_type": "percentage" if fields.get("discount_amount") is None else "fixed_amount",
                "discount_percentage": 10.0 if fields.get("discount_amount") is None else None,
                "duration_type": "one_time",
                "status": "active",
                "apply_discount_on": "not_applicable",
                "apply_on": "invoice_amount",
                "created_at": now,
                "object": "coupon",
                "redemptions": 0,
                "included_in_mrr": True,
            }
        if resource in ("items", "item_prices", "plans", "addons"):
            return self._catalog_template(resource, fields, now)
        raise KeyError(f"no such resource: {resource}")

    def _catalog_template(self, resource: str, fields: Obj, now: int) -> Obj:
        name = str(fields.get("name") or f"New {OBJECT_NAMES[resource].replace('_', ' ')}")
        base: Obj = {
            "id": random_id(),
            "name": name,
            "status": "active",
            "channel": "web",
            "object": OBJECT_NAMES[resource],
        }
        if resource == "items":
            return {
                **base,
                "external_name": name,
                "item_family_id": "saas-products",
                "type": "plan",
                "is_shippable": False,
                "is_giftable": False,
                "enabled_for_checkout": True,
                "enabled_in_portal": True,
                "item_applicability": "all",
                "metered": False,
            }
        priced = {
            **base,
            "price": 1_000,
            "period": 1,
            "period_unit": "month",
            "pricing_model": "per_unit",
            "currency_code": "USD",
        }
        if resource == "item_prices":
            if not fields.get("item_id"):
                raise AdminError(422, "a new item_price needs an item_id")
            return {
                **priced,
                "item_family_id": "saas-products",
                "external_name": name,
                "free_quantity": 0,
                "created_at": now,
                "is_taxable": True,
                "item_type": "plan",
            }
        if resource == "plans":
            return {
                **priced,
                "invoice_name": name,
                "charge_model": "per_unit",
                "free_quantity": 0,
                "addon_applicability": "all",
                "is_shippable": False,
                "giftable": False,
                "taxable": True,
            }
        return {
            **priced,
            "invoice_name": name,
            "charge_type": "recurring",
            "type": "quantity",
            "taxable": True,
        }

    def _subscription_template(self, site: str, fields: Obj, now: int, *, pc2: bool) -> Obj:
        customer_id = fields.get("customer_id")
        if not customer_id:
            raise AdminError(422, "a new subscription needs a customer_id")
        self._get(site, "customers", str(customer_id))
        if pc2:
            price_id = fields.get("item_price_id")
            if not price_id:
                raise AdminError(422, "a new subscription needs an item_price_id (Product Catalog 2.0)")
            price = self._get(site, "item_prices", str(price_id))
        else:
            price_id = fields.get("plan_id")
            if not price_id:
                raise AdminError(422, "a new subscription needs a plan_id (Product Catalog 1.0)")
            price = self._get(site, "plans", str(price_id))
        period, unit = int(price.get("period") or 1), str(price.get("period_unit") or "month")
        end = add_interval(now, unit, period)
        quantity = int(fields.get("quantity") or 1)
        amount = int(price.get("price") or 0)
        obj: Obj = {
            "id": random_id(),
            "customer_id": customer_id,
            "billing_period": period,
            "billing_period_unit": unit,
            "status": "active",
            "currency_code": price.get("currency_code", "USD"),
            "current_term_start": now,
            "current_term_end": end,
            "next_billing_at": end,
            "started_at": now,
            "activated_at": now,
            "created_at": now,
            "has_scheduled_changes": False,
            "channel": "web",
            "deleted": False,
            "object": "subscription",
            "due_invoices_count": 0,
            "mrr": amount * quantity,
            "exchange_rate": 1.0,
            "base_currency_code": price.get("currency_code", "USD"),
        }
        if pc2:
            obj["subscription_items"] = [
                {
                    "item_price_id": price_id,
                    "item_type": "plan",
                    "quantity": quantity,
                    "unit_price": amount,
                    "amount": amount * quantity,
                    "free_quantity": 0,
                    "object": "subscription_item",
                }
            ]
        else:
            obj.update(
                plan_id=price_id,
                plan_quantity=quantity,
                plan_unit_price=amount,
                plan_amount=amount * quantity,
                plan_free_quantity=0,
            )
        return obj

    def _invoice_template(self, site: str, fields: Obj, now: int) -> Obj:
        customer_id = fields.get("customer_id")
        if not customer_id:
            raise AdminError(422, "a new invoice needs a customer_id")
        self._get(site, "customers", str(customer_id))
        sub_id = fields.get("subscription_id")
        sub = self._get(site, "subscriptions", str(sub_id)) if sub_id else None
        total = int(fields.get("total") or (sub or {}).get("mrr") or 1_000)
        invoices = self._collection(site, "invoices")
        numbers = [int(i["id"]) for i in invoices.view("date").items if str(i["id"]).isdigit()]
        return compact(
            {
                "id": str(max(numbers, default=1000) + 1),
                "customer_id": customer_id,
                "subscription_id": sub_id,
                "recurring": sub is not None,
                "status": "payment_due",
                "price_type": "tax_exclusive",
                "date": now,
                "due_date": now,
                "net_term_days": 0,
                "exchange_rate": 1.0,
                "total": total,
                "amount_paid": 0,
                "amount_adjusted": 0,
                "write_off_amount": 0,
                "credits_applied": 0,
                "amount_due": total,
                "amount_to_collect": total,
                "dunning_status": "in_progress",
                "deleted": False,
                "object": "invoice",
                "first_invoice": False,
                "has_advance_charges": False,
                "term_finalized": True,
                "is_gifted": False,
                "generated_at": now,
                "channel": "web",
                "round_off_amount": 0,
                "tax": 0,
                "sub_total": total,
                "currency_code": (sub or {}).get("currency_code", "USD"),
                "base_currency_code": (sub or {}).get("currency_code", "USD"),
                "line_items": [],
                "discounts": [],
                "linked_payments": [],
                "dunning_attempts": [],
                "applied_credits": [],
                "adjustment_credit_notes": [],
                "issued_credit_notes": [],
                "linked_orders": [],
            }
        )


def delete_key(site: SiteState, key: str | None) -> dict[str, str]:
    """The site's admin deletes an API key (default the first full-access one), with no replacement:
    it answers 401 from now on."""
    keys = site.keys
    if key is None:
        key = next((k for k, v in keys.items() if v.resources is None), None)
    if key is None or key not in keys:
        raise KeyError(f"no such key on site {site.site.name}")
    del keys[key]
    return {"site": site.site.name, "deleted": key[:9] + "…" + key[-4:]}


def roll_key(site: SiteState, old_key: str | None) -> dict[str, str]:
    """Replace a site's API key by a new one: the old one answers 401 from now on."""
    keys = site.keys
    if old_key is None:
        old_key = next((k for k, v in keys.items() if v.resources is None), None)
    if old_key is None or old_key not in keys:
        raise KeyError(f"no such key on site {site.site.name}")
    prefix = "live_" if site.site.livemode else "test_"
    new_key = prefix + "".join(secrets.choice(_ALNUM) for _ in range(36))
    keys[new_key] = cfg.ChargebeeKey(new_key, keys[old_key].resources)
    del keys[old_key]
    return {"site": site.site.name, "key": new_key, "revoked": old_key[:9] + "…" + old_key[-4:]}
