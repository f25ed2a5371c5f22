"""Deterministic sample billing history for one Stripe account and one Chargebee site.

`generate_dataset()` returns a `Dataset` whose `stripe` and `chargebee` dicts hold, per resource,
the objects exactly as the fakes' list endpoints return them (newest first). Treat them as
read-only: nested objects (a price inside many subscription items) are shared.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sandbox.data.chargebee_objects import render_chargebee
from sandbox.data.model import DAY_S, build_history
from sandbox.data.stripe_objects import render_stripe

DATASET_NOW = 1_793_491_200
"""2026-11-01T00:00:00Z: the instant the sample history runs up to (fixed, for determinism)."""

DatasetSize = Literal["tiny", "small", "medium", "benchmark"]
CUSTOMERS_BY_SIZE: dict[str, int] = {"tiny": 12, "small": 60, "medium": 1_000, "benchmark": 12_500}
"""Customers per size; `benchmark` yields more than 100k objects per processor."""

STRIPE_RESOURCE_ORDER = ("customers", "products", "prices", "plans", "coupons", "subscriptions", "invoices")
Obj = dict[str, Any]


@dataclass(frozen=True)
class DatasetOptions:
    seed: int = 42
    customers: int = CUSTOMERS_BY_SIZE["small"]
    now: int = DATASET_NOW
    history_days: int = 730
    max_invoices_per_subscription: int = 24
    """Only the latest N billing periods of a subscription are invoiced (keeps weekly plans small)."""
    shared_created_ratio: float = 0.0
    """Share of customers (and their subscriptions) created at one of a few identical instants."""
    chargebee_catalog_version: Literal["1.0", "2.0"] = "2.0"
    stripe: bool = True
    chargebee: bool = True
    livemode: bool = False
    account_name: str = "Acme Subscriptions Inc."

    @classmethod
    def for_size(cls, size: DatasetSize, **overrides: Any) -> DatasetOptions:
        return replace(cls(customers=CUSTOMERS_BY_SIZE[size]), **overrides)


@dataclass
class Dataset:
    options: DatasetOptions
    stripe: dict[str, list[Obj]] = field(default_factory=dict)
    chargebee: dict[str, list[Obj]] = field(default_factory=dict)

    @property
    def object_count(self) -> int:
        return sum(len(v) for v in self.stripe.values()) + sum(len(v) for v in self.chargebee.values())

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            "stripe": {k: len(v) for k, v in self.stripe.items()},
            "chargebee": {k: len(v) for k, v in self.chargebee.items()},
        }


def _newest_first(objects: list[Obj], created_field: str) -> list[Obj]:
    return sorted(objects, key=lambda o: (o.get(created_field, 0), o["id"]), reverse=True)


# Field each Chargebee resource is listed by when no sort_by is given (see chargebee_app).
CHARGEBEE_DEFAULT_ORDER_FIELD = {
    "customers": "created_at",
    "subscriptions": "created_at",
    "invoices": "date",
    "coupons": "created_at",
    "plans": "updated_at",
    "addons": "updated_at",
    "items": "updated_at",
    "item_prices": "updated_at",
}


def generate_dataset(options: DatasetOptions | None = None, **overrides: Any) -> Dataset:
    """Build the sample history; same options, same objects (ids included)."""
    opts = replace(options or DatasetOptions(), **overrides)
    if opts.customers < 0 or opts.history_days < 60:
        raise ValueError("customers must be >= 0 and history_days >= 60")
    history = build_history(
        random.Random(opts.seed),
        now=opts.now,
        customers=opts.customers,
        history_days=opts.history_days,
        max_invoices_per_subscription=opts.max_invoices_per_subscription,
        shared_created_ratio=opts.shared_created_ratio,
    )
    dataset = Dataset(opts)
    if opts.stripe:
        rendered = render_stripe(
            random.Random(f"stripe:{opts.seed}"),
            history,
            livemode=opts.livemode,
            account_name=opts.account_name,
        )
        dataset.stripe = {name: _newest_first(rendered[name], "created") for name in STRIPE_RESOURCE_ORDER}
    if opts.chargebee:
        rendered = render_chargebee(
            random.Random(f"chargebee:{opts.seed}"), history, catalog_version=opts.chargebee_catalog_version
        )
        dataset.chargebee = {
            name: _newest_first(objs, CHARGEBEE_DEFAULT_ORDER_FIELD[name]) for name, objs in rendered.items()
        }
    return dataset


__all__ = [
    "CUSTOMERS_BY_SIZE",
    "DATASET_NOW",
    "DAY_S",
    "Dataset",
    "DatasetOptions",
    "DatasetSize",
    "generate_dataset",
]
