"""The account routes of the connector (SPEC "HTTP API"): parse, call the use case, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from connector.entrypoints.http_dependencies import AuthorizedAccount, DependenciesDep
from connector.entrypoints.http_errors import error_responses
from connector.entrypoints.http_models import (
    ChargebeeConnectBody,
    ChargebeeConnected,
    ChargebeeReconnected,
    ChargebeeWebhookView,
    ConnectionView,
    Features,
    ImportAccepted,
    LatestImportView,
    SkipAccepted,
    SkipBody,
    StripeConnectAccepted,
    StripeConnectBody,
    SyncView,
)
from connector.service.connect_chargebee import (
    ChargebeeCredentialsSubmission,
    connect_chargebee,
    webhook_url,
)
from connector.service.connect_stripe import StripeKeySubmission, connect_stripe
from connector.service.disconnect import disconnect
from connector.service.read_connection import read_connection
from connector.service.reconnect import Reconnected
from connector.service.request_import import request_import
from connector.service.skip_connection import SkipRequest, skip_connection

router = APIRouter(prefix="/v1/accounts/{account_id}", tags=["connections"])


@router.post(
    "/connections/stripe",
    summary="Check a Stripe API key and get the URL where the person authorizes our platform",
    description="On an account whose connection is `needs_reconnect`, reconnects it: the key must "
    "be of the connection's Stripe account and mode (else 409 `different_processor_account`); the "
    "answer names the same `connection_id`, and the connection is connected again, with its "
    "history, once the person authorizes the same account at `authorize_url`.",
    responses=error_responses(401, 403, 409, 422, 429, 503),
)
async def post_stripe_connection(
    body: StripeConnectBody, account_id: AuthorizedAccount, deps: DependenciesDep
) -> StripeConnectAccepted:
    pending = await connect_stripe(
        deps,
        StripeKeySubmission(
            account_id=account_id,
            api_key=body.api_key,
            contact_email=body.contact_email,
            return_url=body.return_url,
        ),
    )
    return StripeConnectAccepted(
        connection_id=pending.connection_id, mode=pending.mode, authorize_url=pending.authorize_url
    )


@router.post(
    "/connections/chargebee",
    status_code=201,
    summary="Check a Chargebee site and API key, connect it and start the import",
    description="On an account whose connection is `needs_reconnect`, reconnects it in place: the "
    "site must be the connection's (else 409 `different_processor_account`); the answer then has "
    "`reconnected: true`, no new webhook credentials (the configured ones keep working), and an "
    "`import_id` only when the gap since sync stopped is beyond the site's event history.",
    responses=error_responses(401, 403, 409, 422, 429, 503),
)
async def post_chargebee_connection(
    body: ChargebeeConnectBody, account_id: AuthorizedAccount, deps: DependenciesDep
) -> ChargebeeConnected | ChargebeeReconnected:
    connected = await connect_chargebee(
        deps,
        ChargebeeCredentialsSubmission(
            account_id=account_id, site=body.site, api_key=body.api_key, contact_email=body.contact_email
        ),
    )
    if isinstance(connected, Reconnected):
        return ChargebeeReconnected(
            connection_id=connected.connection_id, mode=connected.mode, import_id=connected.import_id
        )
    url = webhook_url(deps, connected.connection_id)
    return ChargebeeConnected(
        connection_id=connected.connection_id,
        mode=connected.mode,
        import_id=connected.import_id,
        webhook=ChargebeeWebhookView(
            url=url,
            username=connected.webhook.username,
            password=connected.webhook.password.get_secret_value(),
        ),
    )


@router.post(
    "/connections/skip",
    summary="Go on without a processor; the features that need one are turned off",
    responses=error_responses(401, 403, 409, 422),
)
async def post_skip(body: SkipBody, account_id: AuthorizedAccount, deps: DependenciesDep) -> SkipAccepted:
    skipped = await skip_connection(
        deps, SkipRequest(account_id=account_id, contact_email=body.contact_email)
    )
    return SkipAccepted(disabled_features=list(skipped.disabled_features))


@router.get(
    "/connection",
    summary="The account's connection, its features and its latest import",
    responses=error_responses(401, 403, 404, 422),
)
async def get_connection(account_id: AuthorizedAccount, deps: DependenciesDep) -> ConnectionView:
    summary = await read_connection(deps, account_id)
    latest = summary.latest_import
    return ConnectionView(
        status=summary.status,
        processor=summary.processor,
        mode=summary.mode,
        connected_at=summary.connected_at,
        features=Features.model_validate({feature.value: on for feature, on in summary.features.items()}),
        feature_reasons={feature.value: reason for feature, reason in summary.feature_reasons.items()},
        latest_import=None if latest is None else LatestImportView.model_validate(latest.model_dump()),
        sync=SyncView.model_validate(summary.sync, from_attributes=True),
    )


@router.delete(
    "/connection",
    status_code=204,
    summary="Disconnect the processor and destroy the stored credentials",
    description=(
        "Without `erase` the imported history is kept. With `erase=true` the importer also deletes "
        "every stored record of the account's processor data (customers, subscriptions, invoices, "
        "coupons, prices, cancellations), publishes a tombstone for each on its `billing.*` topic, "
        "then `AccountDataErased` on `connections.v1`; the erase runs after the answer. The "
        "account's offers (subscription and customer ids, MRR) are deleted before it. Asking again "
        "(also after a plain disconnect) is harmless."
    ),
    responses=error_responses(401, 403, 404, 422),
)
async def delete_connection(
    account_id: AuthorizedAccount,
    deps: DependenciesDep,
    erase: Annotated[
        bool,
        Query(description="Also erase the account's stored processor data (tombstones published)."),
    ] = False,
) -> Response:
    await disconnect(deps, account_id, erase=erase)
    return Response(status_code=204)


@router.post(
    "/imports",
    status_code=202,
    summary="Import the connected processor's billing history again",
    responses=error_responses(401, 403, 404, 409, 422),
)
async def post_import(account_id: AuthorizedAccount, deps: DependenciesDep) -> ImportAccepted:
    return ImportAccepted(import_id=await request_import(deps, account_id))
