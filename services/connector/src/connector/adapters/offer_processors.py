"""Which SDK adapter applies a connection's offers, with its stored credentials."""

from __future__ import annotations

from contracts.connections import ProcessorCredentials, StoredConnection
from contracts.events import Processor

from connector.adapters.chargebee_writes import ChargebeeOffers
from connector.adapters.stripe_writes import StripeOffers
from connector.domain.offers import OfferProcessor


class SdkOfferProcessors:
    def __init__(self, *, stripe_api_base: str, chargebee_url_template: str, timeout_s: float) -> None:
        self._stripe_api_base = stripe_api_base
        self._chargebee_url_template = chargebee_url_template
        self._timeout_s = timeout_s

    def for_connection(
        self, connection: StoredConnection, credentials: ProcessorCredentials
    ) -> OfferProcessor:
        if connection.processor is Processor.STRIPE:
            # The OAuth access token carries the grant's read_write scope; the pasted key may be read-only.
            token = credentials.oauth_access_token or credentials.api_key
            return StripeOffers(
                token.get_secret_value(), api_base=self._stripe_api_base, timeout_s=self._timeout_s
            )
        site = connection.site or ""
        return ChargebeeOffers(
            credentials.api_key.get_secret_value(),
            site=site,
            api_url=self._chargebee_url_template.replace("{site}", site),
            catalog=connection.product_catalog or "2.0",
            timeout_s=self._timeout_s,
        )
