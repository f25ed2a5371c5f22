"""Stripe as a :class:`ProcessorSource`: ``GET /v1/<resource>`` pages, newest first.

A window ``[gte, lt)`` maps exactly onto ``created[gte]``/``created[lt]``; the cursor is Stripe's
``starting_after`` (the last object id served) and exists only while ``has_more``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from contracts.events import Processor

from importer.adapters.processor_http import ProcessorClient
from importer.adapters.stripe_pages import page_decoder
from importer.domain.raw import integer, mapping, sequence, text
from importer.domain.resources import STRIPE_RESOURCES
from importer.domain.source import FetchedPage, PageQuery, SourceError, SourceErrorCode

#: The API version the normaliser reads (Stripe answers in the account's default otherwise).
STRIPE_API_VERSION: Final = "2024-06-20"
MAX_PAGE_SIZE: Final = 100

#: Extra query parameters per resource: cancelled subscriptions too, and what the normaliser reads
#: from expanded objects (a discount's coupon, a price's product name).
LIST_PARAMS: Final[Mapping[str, tuple[tuple[str, str], ...]]] = {
    "subscriptions": (("status", "all"), ("expand[]", "data.discounts")),
    "prices": (("expand[]", "data.product"),),
    "plans": (("expand[]", "data.product"),),
}


class StripeSource:
    """Reads one connected Stripe account."""

    processor: Final = Processor.STRIPE

    def __init__(self, client: ProcessorClient, api_base: str) -> None:
        self._client = client
        self._api_base = api_base.rstrip("/")

    def resources(self) -> Sequence[str]:
        return STRIPE_RESOURCES

    async def fetch_page(self, query: PageQuery) -> FetchedPage:
        if query.resource not in STRIPE_RESOURCES:
            raise SourceError(
                SourceErrorCode.INVALID_REQUEST, f"stripe has no resource {query.resource!r}", retryable=False
            )
        gte, lt = query.window.created_gte, query.window.created_lt
        if gte is not None and lt is not None and gte >= lt:
            return FetchedPage(objects=[], next_cursor=None)
        params: list[tuple[str, str]] = [("limit", str(min(max(query.limit, 1), MAX_PAGE_SIZE)))]
        if gte is not None:
            params.append(("created[gte]", str(gte)))
        if lt is not None:
            params.append(("created[lt]", str(lt)))
        if query.cursor is not None:
            params.append(("starting_after", query.cursor))
        params.extend(LIST_PARAMS.get(query.resource, ()))
        body = await self._client.get_json(
            f"{self._api_base}/v1/{query.resource}",
            params,
            endpoint=query.resource,
            decode=page_decoder(query.resource),
        )
        objects = [mapping(entry) for entry in sequence(body.get("data")) if isinstance(entry, Mapping)]
        last_id = text(objects[-1].get("id")) if objects else None
        more = body.get("has_more") is True
        return FetchedPage(
            objects=objects,
            next_cursor=last_id if more else None,
            first_created=integer(objects[0].get("created")) if objects else None,
            last_created=integer(objects[-1].get("created")) if objects else None,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
