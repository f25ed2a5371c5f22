"""Stripe over HTTPS with httpx: whose account a key is, what it may read, the OAuth code exchange
and the revocation of a grant.

httpx rather than the official SDK: the connector makes four kinds of calls, needs the raw status,
``Retry-After`` and per-call timeouts to answer the person precisely, and must never let a library
log or retry with a key on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

import httpx
from pydantic import SecretStr

from connector.adapters.processor_http import json_string, throttled_or_down
from connector.domain.credentials import StripeApiKey
from connector.domain.oauth import GrantRevocationDeferred, StripeAuthorization
from connector.domain.refusals import ConnectionRefused, RefusalCode, processor_unavailable

STRIPE: Final = "Stripe"
STRIPE_API_VERSION: Final = "2024-06-20"


def _key_rejected() -> ConnectionRefused:
    return ConnectionRefused(
        RefusalCode.KEY_REJECTED,
        "Stripe did not accept this key. It may have been rolled or deleted; copy a current key "
        "from Stripe Dashboard → Developers → API keys.",
    )


def _insufficient(missing: Sequence[str]) -> ConnectionRefused:
    return ConnectionRefused(
        RefusalCode.INSUFFICIENT_PERMISSIONS,
        "This key may not read " + ", ".join(missing) + ". Give it read access in Stripe Dashboard → "
        "Developers → API keys, then try again.",
        missing_permissions=missing,
    )


class StripeHttpGateway:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_base: str,
        connect_base: str,
        platform_secret_key: SecretStr | None,
        client_id: str | None = None,
    ) -> None:
        self._client = client
        self._api_base = api_base.rstrip("/")
        self._connect_base = connect_base.rstrip("/")
        self._platform_key = platform_secret_key
        self._client_id = client_id

    async def account_of(self, key: StripeApiKey) -> str:
        response = await self._get(key, "/v1/account")
        if response.status_code == 403:
            raise _insufficient(["account"])
        self._refuse_unless_ok(response)
        account_id = json_string(response, "id")
        if not account_id:
            raise processor_unavailable(STRIPE)
        return account_id

    async def unreadable_resources(self, key: StripeApiKey, resources: Sequence[str]) -> list[str]:
        responses = await asyncio.gather(
            *(self._get(key, f"/v1/{resource}", {"limit": "1"}) for resource in resources)
        )
        missing: list[str] = []
        for resource, response in zip(resources, responses, strict=True):
            if response.status_code == 403:
                missing.append(resource)
            else:
                self._refuse_unless_ok(response)
        return missing

    async def exchange_code(self, code: str) -> StripeAuthorization:
        if self._platform_key is None:
            raise ConnectionRefused(
                RefusalCode.STRIPE_CONNECT_UNAVAILABLE,
                "Connecting Stripe is not available right now. Please try again later.",
            )
        try:
            response = await self._client.post(
                f"{self._connect_base}/oauth/token",
                data={"grant_type": "authorization_code", "code": code},
                auth=httpx.BasicAuth(self._platform_key.get_secret_value(), ""),
            )
        except httpx.TransportError as error:
            raise processor_unavailable(STRIPE) from error
        refusal = throttled_or_down(STRIPE, response)
        if refusal is not None:
            raise refusal
        if response.status_code == 401:
            # Our platform key, not the person's: nothing they can do but try later.
            raise ConnectionRefused(
                RefusalCode.STRIPE_CONNECT_UNAVAILABLE,
                "Connecting Stripe is not available right now. Please try again later.",
            )
        if response.status_code != 200:
            raise ConnectionRefused(
                RefusalCode.AUTHORIZATION_FAILED,
                "Stripe did not accept the authorization (it may have expired). Please start the "
                "connection again.",
            )
        stripe_user_id = json_string(response, "stripe_user_id")
        if not stripe_user_id:
            raise processor_unavailable(STRIPE)
        return StripeAuthorization(
            stripe_user_id=stripe_user_id,
            access_token=json_string(response, "access_token"),
            refresh_token=json_string(response, "refresh_token"),
            scope=json_string(response, "scope"),
        )

    async def deauthorize(self, stripe_user_id: str) -> bool:
        """``POST /oauth/deauthorize`` with our client id and platform key. Stripe answers 400 when
        the account has no grant to our platform (any more: its owner may have revoked it in the
        Dashboard), which leaves nothing to do."""
        if self._platform_key is None or not self._client_id:
            raise GrantRevocationDeferred("the Stripe platform credentials are not configured")
        try:
            response = await self._client.post(
                f"{self._connect_base}/oauth/deauthorize",
                data={"client_id": self._client_id, "stripe_user_id": stripe_user_id},
                auth=httpx.BasicAuth(self._platform_key.get_secret_value(), ""),
            )
        except httpx.TransportError as error:
            raise GrantRevocationDeferred(f"Stripe unreachable: {type(error).__name__}") from error
        if response.status_code in {200, 400}:
            return response.status_code == 200
        raise GrantRevocationDeferred(f"Stripe answered {response.status_code}")

    async def _get(
        self, key: StripeApiKey, path: str, params: dict[str, str] | None = None
    ) -> httpx.Response:
        try:
            return await self._client.get(
                f"{self._api_base}{path}",
                params=params,
                headers={"Authorization": f"Bearer {key.reveal()}", "Stripe-Version": STRIPE_API_VERSION},
            )
        except httpx.TransportError as error:
            raise processor_unavailable(STRIPE) from error

    @staticmethod
    def _refuse_unless_ok(response: httpx.Response) -> None:
        if response.status_code == 200:
            return
        if response.status_code == 401:
            raise _key_rejected()
        if response.status_code == 403:
            raise _insufficient(["account"])
        raise throttled_or_down(STRIPE, response) or processor_unavailable(STRIPE)
