"""What an import copies from each processor, and how each resource is counted and windowed.

Resources carry the processor's own names (the path of its list endpoint). Counts in
``ImportProgressed``/``ImportCompleted`` and the imports API use :func:`count_key`: the canonical
resource the objects become, except where that would count one object twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

from contracts.events import Processor, Resource

ProductCatalog = Literal["1.0", "2.0"]

STRIPE_RESOURCES: Final = (
    "customers",
    "products",
    "prices",
    "plans",
    "coupons",
    "subscriptions",
    "invoices",
)
CHARGEBEE_COMMON_RESOURCES: Final = ("customers", "subscriptions", "invoices", "coupons")
CHARGEBEE_CATALOG_RESOURCES: Final[Mapping[str, tuple[str, ...]]] = {
    "1.0": ("plans", "addons"),
    "2.0": ("items", "item_prices"),
}

_COUNT_KEYS: Final[Mapping[Processor, Mapping[str, str]]] = {
    # Stripe serves every recurring price under /v1/plans too, with the same id: folding plans into
    # ``prices`` would count those objects twice, so legacy plans keep their own count.
    Processor.STRIPE: {
        "customers": Resource.CUSTOMERS,
        "products": Resource.PRODUCTS,
        "prices": Resource.PRICES,
        "plans": "plans",
        "coupons": Resource.COUPONS,
        "subscriptions": Resource.SUBSCRIPTIONS,
        "invoices": Resource.INVOICES,
    },
    # Chargebee's catalog objects are disjoint: plans and addons (1.0) or item prices (2.0) are the
    # prices; items (2.0) are the products they price.
    Processor.CHARGEBEE: {
        "customers": Resource.CUSTOMERS,
        "subscriptions": Resource.SUBSCRIPTIONS,
        "invoices": Resource.INVOICES,
        "coupons": Resource.COUPONS,
        "plans": Resource.PRICES,
        "addons": Resource.PRICES,
        "items": Resource.PRODUCTS,
        "item_prices": Resource.PRICES,
    },
}

#: Chargebee list endpoints that cannot filter on a creation time (the catalog only filters on
#: ``updated_at``, which moves): they are read whole, in one unbounded window.
_CHARGEBEE_UNWINDOWED: Final = frozenset({"plans", "addons", "items", "item_prices"})

#: The field that places an object on the time line its list endpoint filters and sorts on.
#: Chargebee invoices have no ``created_at``; their list filters and sorts on the invoice ``date``.
_CHARGEBEE_TIME_FIELD: Final[Mapping[str, str]] = {"invoices": "date"}


def resources_for(processor: Processor, product_catalog: ProductCatalog | None = None) -> tuple[str, ...]:
    """The resources an import of this processor copies, in the processor's own names."""
    if processor is Processor.STRIPE:
        return STRIPE_RESOURCES
    catalog = product_catalog or "2.0"
    return (*CHARGEBEE_COMMON_RESOURCES, *CHARGEBEE_CATALOG_RESOURCES[catalog])


def count_key(processor: Processor, resource: str) -> str:
    """The key under which objects of ``resource`` are counted in ``resources: {key: {imported}}``."""
    return str(_COUNT_KEYS[processor].get(resource, resource))


#: Resources that grow with the business, as against its catalog (products, prices, plans, coupons,
#: which stay small): what an import of a large account is made of.
_GROWING: Final = frozenset({"customers", "subscriptions", "invoices"})


def growing(processor: Processor, resources: tuple[str, ...]) -> tuple[str, ...]:
    """Those of ``resources`` that grow with the business and that the processor can window."""
    return tuple(
        resource for resource in resources if resource in _GROWING and windowable(processor, resource)
    )


def windowable(processor: Processor, resource: str) -> bool:
    """Whether the source can answer a bounded :class:`~importer.domain.source.Window` of ``resource``.

    A resource that is not windowable must be fetched with ``Window()`` (unbounded) only; a source
    refuses a bounded window for it rather than silently return the whole list for every window.
    """
    return not (processor is Processor.CHARGEBEE and resource in _CHARGEBEE_UNWINDOWED)


def time_field(processor: Processor, resource: str) -> str:
    """The raw object's field (Unix seconds) that windows and ``first/last_created`` refer to."""
    if processor is Processor.STRIPE:
        return "created"
    return _CHARGEBEE_TIME_FIELD.get(resource, "created_at")
