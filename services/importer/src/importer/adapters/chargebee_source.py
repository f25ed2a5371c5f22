"""Chargebee as a :class:`ProcessorSource`: ``GET {site url}/<resource>`` pages, oldest first.

Chargebee's timestamp filters are ``after``/``before`` (both exclusive) and ``between`` (inclusive
at both ends), on whole seconds. A half-open window ``[gte, lt)`` is therefore
``between [gte, lt - 1]``, or ``after gte - 1`` / ``before lt`` when only one side is bounded: an
object created at exactly ``lt`` belongs to the next window only, one at ``gte`` to this one only.
Lists are sorted ``created_at`` ascending (invoices: ``date``, which is what their list filters
on); the cursor is Chargebee's ``next_offset``. Catalog lists (plans, addons, items, item prices)
cannot filter on creation, so their one window is read whole (``resources.windowable``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from contracts.events import Processor

from importer.adapters.processor_http import ProcessorClient
from importer.domain.raw import integer, mapping, sequence, text
from importer.domain.resources import ProductCatalog, resources_for, time_field, windowable
from importer.domain.source import FetchedPage, PageQuery, SourceError, SourceErrorCode

MAX_PAGE_SIZE: Final = 100

#: The key a list entry (``{"list": [{"customer": {...}}]}``) or a retrieve's answer wraps its object in.
ENTRY_KEYS: Final[Mapping[str, str]] = {
    "customers": "customer",
    "subscriptions": "subscription",
    "invoices": "invoice",
    "coupons": "coupon",
    "plans": "plan",
    "addons": "addon",
    "items": "item",
    "item_prices": "item_price",
}


class ChargebeeSource:
    """Reads one connected Chargebee site."""

    processor: Final = Processor.CHARGEBEE

    def __init__(
        self, client: ProcessorClient, site_url: str, product_catalog: ProductCatalog | None
    ) -> None:
        self._client = client
        self._site_url = site_url.rstrip("/")
        self._resources = resources_for(Processor.CHARGEBEE, product_catalog)

    def resources(self) -> Sequence[str]:
        return self._resources

    async def fetch_page(self, query: PageQuery) -> FetchedPage:
        resource = query.resource
        if resource not in ENTRY_KEYS:
            raise SourceError(
                SourceErrorCode.INVALID_REQUEST, f"chargebee has no resource {resource!r}", retryable=False
            )
        params: list[tuple[str, str]] = [("limit", str(min(max(query.limit, 1), MAX_PAGE_SIZE)))]
        if query.cursor is not None:
            params.append(("offset", query.cursor))
        field = time_field(Processor.CHARGEBEE, resource)
        if windowable(Processor.CHARGEBEE, resource):
            window_params = _window_params(field, query.window.created_gte, query.window.created_lt)
            if window_params is None:
                return FetchedPage(objects=[], next_cursor=None)
            params.extend(window_params)
            params.append(("sort_by[asc]", field))
        body = await self._client.get_json(f"{self._site_url}/{resource}", params, endpoint=resource)
        entry_key = ENTRY_KEYS[resource]
        objects = [
            mapping(mapping(entry).get(entry_key))
            for entry in sequence(body.get("list"))
            if isinstance(mapping(entry).get(entry_key), Mapping)
        ]
        return FetchedPage(
            objects=objects,
            next_cursor=text(body.get("next_offset")),
            first_created=integer(objects[0].get(field)) if objects else None,
            last_created=integer(objects[-1].get(field)) if objects else None,
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def _window_params(field: str, gte: int | None, lt: int | None) -> list[tuple[str, str]] | None:
    """Chargebee filter parameters for ``gte <= t < lt``; ``None`` when the window is empty."""
    if gte is not None and lt is not None:
        if gte > lt - 1:
            return None
        return [(f"{field}[between]", f"[{gte},{lt - 1}]")]
    if gte is not None:
        return [(f"{field}[after]", str(gte - 1))]
    if lt is not None:
        return [(f"{field}[before]", str(lt))]
    return []
