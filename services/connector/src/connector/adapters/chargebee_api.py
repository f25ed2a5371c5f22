"""Chargebee over HTTPS with httpx: whether a key opens a site, what it may read, which catalog it runs.

The URL is ``CHARGEBEE_API_URL_TEMPLATE`` with ``{site}`` replaced by a :class:`ChargebeeSite`, a
validated DNS label, so the site field can only ever choose a sub-domain, never another host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

import httpx

from connector.adapters.processor_http import json_string, throttled_or_down, unknown_host
from connector.domain.connection import READ_ONLY_KEY, WRITE_ACCESS_NOT_VERIFIED
from connector.domain.credentials import ChargebeeApiKey, ChargebeeSite
from connector.domain.ports import ProductCatalog
from connector.domain.refusals import ConnectionRefused, RefusalCode, processor_unavailable

CHARGEBEE: Final = "Chargebee"
SITE_PLACEHOLDER: Final = "{site}"
#: Chargebee's answer to a Product Catalog 2.0 call on a 1.0 site.
CONFIGURATION_INCOMPATIBLE: Final = "configuration_incompatible"
#: Besides customers, what the importer lists, by catalog version.
IMPORTED_RESOURCES: Final[dict[ProductCatalog, tuple[str, ...]]] = {
    "1.0": ("subscriptions", "invoices", "coupons", "plans", "addons"),
    "2.0": ("subscriptions", "invoices", "coupons", "items", "item_prices"),
}


def _site_not_found() -> ConnectionRefused:
    return ConnectionRefused(
        RefusalCode.SITE_NOT_FOUND,
        "There is no Chargebee site with this name. Check the part before .chargebee.com in your "
        "Chargebee address (test sites end in -test).",
    )


class ChargebeeHttpGateway:
    def __init__(self, client: httpx.AsyncClient, *, url_template: str) -> None:
        if url_template.count(SITE_PLACEHOLDER) != 1:
            raise ValueError("the Chargebee URL template needs {site} exactly once")
        self._client = client
        self._template = url_template.rstrip("/")

    async def check_access(self, site: ChargebeeSite, key: ChargebeeApiKey) -> None:
        response = await self._get(site, key, "/customers")
        if response.status_code != 200:
            raise self._refusal(response)

    async def product_catalog(self, site: ChargebeeSite, key: ChargebeeApiKey) -> ProductCatalog:
        response = await self._get(site, key, "/item_prices")
        if response.status_code == 200:
            catalog: ProductCatalog = "2.0"
        elif response.status_code == 400 and CONFIGURATION_INCOMPATIBLE in (
            json_string(response, "api_error_code"),
            json_string(response, "error_code"),
        ):
            catalog = "1.0"
        else:
            raise self._refusal(response)
        missing = await self._unreadable(site, key, IMPORTED_RESOURCES[catalog])
        if missing:
            raise ConnectionRefused(
                RefusalCode.INSUFFICIENT_PERMISSIONS,
                "This API key may not read " + ", ".join(missing) + ". Use a read-only key with "
                "access to all data (Settings → Configure Chargebee → API Keys).",
                missing_permissions=missing,
            )
        return catalog

    async def write_refusal(
        self, site: ChargebeeSite, key: ChargebeeApiKey, catalog: ProductCatalog
    ) -> str | None:
        """Chargebee refuses a read-only key's write before it reads any parameter, and a full key's
        empty coupon creation for its missing parameters: so an empty coupon creation tells the key's
        type and creates nothing. Anything else (throttled, down) leaves it unverified."""
        path = "/coupons" if catalog == "1.0" else "/coupons/create_for_items"
        url = self._template.replace(SITE_PLACEHOLDER, site.name) + path
        try:
            response = await self._client.post(url, data={}, auth=httpx.BasicAuth(key.reveal(), ""))
        except httpx.TransportError:
            return WRITE_ACCESS_NOT_VERIFIED
        if response.status_code in (401, 403):
            return READ_ONLY_KEY
        if response.status_code == 400:
            return None
        return WRITE_ACCESS_NOT_VERIFIED

    async def _unreadable(
        self, site: ChargebeeSite, key: ChargebeeApiKey, resources: Sequence[str]
    ) -> list[str]:
        responses = await asyncio.gather(*(self._get(site, key, f"/{resource}") for resource in resources))
        missing: list[str] = []
        for resource, response in zip(resources, responses, strict=True):
            if response.status_code == 403:
                missing.append(resource)
            elif response.status_code != 200:
                raise self._refusal(response)
        return missing

    async def _get(self, site: ChargebeeSite, key: ChargebeeApiKey, path: str) -> httpx.Response:
        url = self._template.replace(SITE_PLACEHOLDER, site.name) + path
        try:
            return await self._client.get(url, params={"limit": "1"}, auth=httpx.BasicAuth(key.reveal(), ""))
        except httpx.TransportError as error:
            if unknown_host(error):
                raise _site_not_found() from error
            raise processor_unavailable(CHARGEBEE) from error

    @staticmethod
    def _refusal(response: httpx.Response) -> ConnectionRefused:
        if response.status_code == 401:
            return ConnectionRefused(
                RefusalCode.KEY_REJECTED,
                "Chargebee did not accept this API key for this site. Check that the key belongs to "
                "this site and has not been deleted.",
            )
        if response.status_code == 403:
            return ConnectionRefused(
                RefusalCode.SITE_BLOCKED,
                "Chargebee refuses access to this site. It may be suspended or restricted; please "
                "check with Chargebee support.",
            )
        if response.status_code == 404:
            return _site_not_found()
        return throttled_or_down(CHARGEBEE, response) or processor_unavailable(CHARGEBEE)
