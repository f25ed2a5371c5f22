"""Stripe list pages of the large resources read field by field: only what the importer reads.

A page of 100 subscriptions is ~340 kB of JSON, of which the normaliser reads a few dozen fields an
object; a full parse builds (and then frees) a dict of every field of every object and of every
object nested in it. For ``customers``, ``subscriptions`` and ``invoices`` (nearly every object of
an account) the page is decoded against the schemas below instead: msgspec skips the other fields
as it scans the text, and the objects come out as dicts holding only the fields below that the
object has with a value other than ``null`` (``raw.get`` answers ``None`` for the others, as for a
``null``). Every field any reader of a listed object reads must be here: the normaliser
(``domain/stripe_objects.py``), the page's ``id``/``created`` (``stripe_source``), sync's
``id``/``deleted`` (``service/sync_apply.py``); a test normalises the sandbox's objects both ways.

A page that does not fit the schemas (a field holding another type than the one descended into, a
value msgspec refuses) is parsed whole, as before: the schemas never change what is read, only how.
One difference on absurd input: an integer beyond 64 bits is read exactly, where orjson reads it as
a float; the normaliser finds either out of range.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec


class _Recurring(msgspec.Struct, omit_defaults=True):
    interval: Any = None
    interval_count: Any = None
    usage_type: Any = None


class _Price(msgspec.Struct, omit_defaults=True):
    """A subscription item's ``price`` (or legacy ``plan``): ``_subscription_item``, ``_unit_amount``."""

    id: Any = None
    product: Any = None
    nickname: Any = None
    currency: Any = None
    unit_amount: Any = None
    unit_amount_decimal: Any = None
    amount: Any = None
    recurring: _Recurring | None = None
    interval: Any = None
    interval_count: Any = None
    usage_type: Any = None


class _Item(msgspec.Struct, omit_defaults=True):
    price: _Price | None = None
    plan: _Price | None = None
    quantity: Any = None
    current_period_end: Any = None


class _Items(msgspec.Struct, omit_defaults=True):
    data: list[_Item] | None = None


class _CancellationDetails(msgspec.Struct, omit_defaults=True):
    reason: Any = None
    feedback: Any = None
    comment: Any = None


class _Subscription(msgspec.Struct, omit_defaults=True):
    id: Any = None
    created: Any = None
    deleted: Any = None
    customer: Any = None
    status: Any = None
    currency: Any = None
    items: _Items | None = None
    discounts: Any = None  # expanded (``data.discounts``): read whole
    discount: Any = None
    start_date: Any = None
    trial_end: Any = None
    current_period_end: Any = None
    cancel_at_period_end: Any = None
    canceled_at: Any = None
    ended_at: Any = None
    cancellation_details: _CancellationDetails | None = None


class _SubscriptionDetails(msgspec.Struct, omit_defaults=True):
    subscription: Any = None


class _InvoiceParent(msgspec.Struct, omit_defaults=True):
    subscription_details: _SubscriptionDetails | None = None


class _StatusTransitions(msgspec.Struct, omit_defaults=True):
    paid_at: Any = None


class _Invoice(msgspec.Struct, omit_defaults=True):
    id: Any = None
    created: Any = None
    deleted: Any = None
    customer: Any = None
    subscription: Any = None
    parent: _InvoiceParent | None = None
    status: Any = None
    currency: Any = None
    total: Any = None
    amount_paid: Any = None
    amount_due: Any = None
    status_transitions: _StatusTransitions | None = None
    attempt_count: Any = None


class _Customer(msgspec.Struct, omit_defaults=True):
    id: Any = None
    created: Any = None
    deleted: Any = None
    email: Any = None
    name: Any = None
    currency: Any = None


class _SubscriptionsPage(msgspec.Struct):
    data: list[_Subscription] | None = None
    has_more: Any = None


class _InvoicesPage(msgspec.Struct):
    data: list[_Invoice] | None = None
    has_more: Any = None


class _CustomersPage(msgspec.Struct):
    data: list[_Customer] | None = None
    has_more: Any = None


_DECODERS: Final[Mapping[str, msgspec.json.Decoder[Any]]] = {
    "subscriptions": msgspec.json.Decoder(_SubscriptionsPage),
    "invoices": msgspec.json.Decoder(_InvoicesPage),
    "customers": msgspec.json.Decoder(_CustomersPage),
}


def page_decoder(resource: str) -> Callable[[bytes], Mapping[str, Any] | None] | None:
    """How to read a list page of ``resource`` field by field (``None``: parse it whole)."""
    decoder = _DECODERS.get(resource)
    if decoder is None:
        return None

    def decode(content: bytes) -> Mapping[str, Any] | None:
        try:
            page = decoder.decode(content)
        except msgspec.DecodeError:  # not of this shape (or not JSON msgspec reads): parse it whole
            return None
        data = None if page.data is None else msgspec.to_builtins(page.data)
        return {"data": data, "has_more": page.has_more}

    return decode
