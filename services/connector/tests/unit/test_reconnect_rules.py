"""Reconnecting a ``needs_reconnect`` connection in place: same processor account only, history
kept, new credentials in place of the lost ones, ``ProcessorReconnected`` through the outbox."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from connector.adapters.sealed_box import seal
from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.service.authorize_stripe import (
    AuthorizationResult,
    StripeCallback,
    complete_stripe_authorization,
)
from connector.service.connect_chargebee import ChargebeeCredentialsSubmission, connect_chargebee
from connector.service.connect_stripe import StripeKeySubmission, connect_stripe
from connector.service.onboarding_intake import REPLAYED, handle_onboarding_request
from connector.service.reconnect import Reconnected
from connector.service.skip_connection import SkipRequest, skip_connection
from connector_fakes import (
    CHARGEBEE_KEY,
    CHARGEBEE_SITE,
    OTHER_STRIPE_ACCOUNT,
    STRIPE_ACCOUNT,
    STRIPE_KEY,
    SyncStatesByConnection,
    World,
    build_world,
    public_key_b64,
)
from contracts.connections import ConnectionStatus
from contracts.events import (
    ChargebeeCredentialsSubmitted,
    ConnectionRejected,
    Processor,
    ProcessorReconnected,
    StripeAuthorizationRequired,
)
from contracts.sync import StoredSyncState, SyncStatus
from pydantic import SecretStr

ACCOUNT = "acc_reconnect"
SECOND_STRIPE_KEY = "sk_test_51UnitAcmeSecondKey00000000000000000acme"
OTHER_STRIPE_KEY = "sk_test_51UnitGlobexSecretKey000000000000000globx"
NEW_CHARGEBEE_KEY = "test_UnitAcmeChargebeeKey0000000000new1"


@pytest.fixture
def world() -> World:
    built = build_world()
    built.stripe.accounts[SECOND_STRIPE_KEY] = STRIPE_ACCOUNT
    built.stripe.accounts[OTHER_STRIPE_KEY] = OTHER_STRIPE_ACCOUNT
    return built


def with_sync(world: World, connection_id: str, *, stopped_ago: timedelta) -> World:
    states = SyncStatesByConnection()
    cursor = world.clock() - stopped_ago
    states.states[connection_id] = StoredSyncState.model_validate(
        {
            "_id": connection_id,
            "account_id": ACCOUNT,
            "processor": "chargebee",
            "status": SyncStatus.STOPPED.value,
            "cursor_s": int(cursor.timestamp()),
            "synced_through": cursor,
        }
    )
    world.deps = dataclasses.replace(world.deps, sync_states=states)
    return world


def stripe(key: str = SECOND_STRIPE_KEY) -> StripeKeySubmission:
    return StripeKeySubmission(
        account_id=ACCOUNT,
        api_key=SecretStr(key),
        contact_email="owner@acme.example",
        return_url="https://app.example/done",
    )


def chargebee(site: str = CHARGEBEE_SITE, key: str = NEW_CHARGEBEE_KEY) -> ChargebeeCredentialsSubmission:
    return ChargebeeCredentialsSubmission(
        account_id=ACCOUNT, site=site, api_key=SecretStr(key), contact_email="owner@acme.example"
    )


def state_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


async def lost_stripe_connection(world: World) -> str:
    pending = await connect_stripe(world.deps, stripe(STRIPE_KEY))
    world.stripe.grant("code_first")
    await complete_stripe_authorization(
        world.deps, StripeCallback(state_of(pending.authorize_url), "code_first")
    )
    world.connections.lose(pending.connection_id)
    world.publisher.published.clear()
    return pending.connection_id


async def lost_chargebee_connection(world: World) -> str:
    connected = await connect_chargebee(world.deps, chargebee(key=CHARGEBEE_KEY))
    world.connections.lose(connected.connection_id)
    world.publisher.published.clear()
    return connected.connection_id


async def test_chargebee_reconnects_in_place_with_the_new_key(world: World) -> None:
    connection_id = await lost_chargebee_connection(world)
    before = await world.connections.get(connection_id)
    assert before is not None
    with_sync(world, connection_id, stopped_ago=timedelta(days=2))

    answer = await connect_chargebee(world.deps, chargebee())

    assert answer == Reconnected(connection_id, before.mode or answer.mode, None)
    after = await world.connections.get(connection_id)
    assert after is not None
    assert after.status is ConnectionStatus.CONNECTED
    assert (after.created_at, after.connected_at) == (before.created_at, before.connected_at)
    assert after.credentials_ciphertext != before.credentials_ciphertext
    assert after.credentials_ciphertext is not None
    assert world.cipher.decrypt(after.credentials_ciphertext).api_key.get_secret_value() == NEW_CHARGEBEE_KEY
    # The webhook credentials the site's admin entered keep working.
    assert after.webhook_password_sha256 == before.webhook_password_sha256
    [event] = world.publisher.events()
    assert isinstance(event, ProcessorReconnected)
    assert (event.connection_id, event.processor, event.processor_account_id, event.import_id) == (
        connection_id,
        Processor.CHARGEBEE,
        CHARGEBEE_SITE,
        None,
    )
    assert world.connections.documents[connection_id].outbox == []


async def test_a_gap_beyond_the_event_history_reconnects_with_a_full_import(world: World) -> None:
    connection_id = await lost_chargebee_connection(world)
    with_sync(world, connection_id, stopped_ago=timedelta(days=31))

    answer = await connect_chargebee(world.deps, chargebee())

    assert isinstance(answer, Reconnected)
    assert answer.import_id is not None
    [event] = world.publisher.events()
    assert isinstance(event, ProcessorReconnected)
    assert event.import_id == answer.import_id
    after = await world.connections.get(connection_id)
    assert after is not None
    assert after.latest_import is not None
    assert after.latest_import.import_id == answer.import_id


async def test_a_connection_that_never_synced_reconnects_with_a_full_import(world: World) -> None:
    await lost_chargebee_connection(world)

    answer = await connect_chargebee(world.deps, chargebee())

    assert isinstance(answer, Reconnected)
    assert answer.import_id is not None


async def test_another_chargebee_site_is_refused_before_any_request(world: World) -> None:
    connection_id = await lost_chargebee_connection(world)
    before = await world.connections.get(connection_id)

    with pytest.raises(ConnectionRefused) as refused:
        await connect_chargebee(world.deps, chargebee(site="globex-test"))

    assert refused.value.code is RefusalCode.DIFFERENT_PROCESSOR_ACCOUNT
    assert await world.connections.get(connection_id) == before
    assert world.publisher.published == []


async def test_the_other_processor_is_refused_as_a_different_account(world: World) -> None:
    await lost_chargebee_connection(world)

    with pytest.raises(ConnectionRefused) as refused:
        await connect_stripe(world.deps, stripe())

    assert refused.value.code is RefusalCode.DIFFERENT_PROCESSOR_ACCOUNT
    assert world.stripe.calls == []


async def test_a_connected_account_is_still_already_connected(world: World) -> None:
    await connect_chargebee(world.deps, chargebee(key=CHARGEBEE_KEY))

    with pytest.raises(ConnectionRefused) as refused:
        await connect_chargebee(world.deps, chargebee())

    assert refused.value.code is RefusalCode.ALREADY_CONNECTED


async def test_skipping_never_replaces_a_connection_that_needs_reconnecting(world: World) -> None:
    connection_id = await lost_chargebee_connection(world)

    with pytest.raises(ConnectionRefused) as refused:
        await skip_connection(world.deps, SkipRequest(account_id=ACCOUNT))

    assert refused.value.code is RefusalCode.ALREADY_CONNECTED
    after = await world.connections.get(connection_id)
    assert after is not None
    assert after.status is ConnectionStatus.NEEDS_RECONNECT


async def test_stripe_reconnects_in_place_at_the_callback(world: World) -> None:
    connection_id = await lost_stripe_connection(world)
    before = await world.connections.get(connection_id)
    assert before is not None

    pending = await connect_stripe(world.deps, stripe())

    assert pending.connection_id == connection_id
    waiting = await world.connections.get(connection_id)
    assert waiting is not None
    # Until the person authorizes, the connection still needs reconnecting, its history kept.
    assert waiting.status is ConnectionStatus.NEEDS_RECONNECT
    assert waiting.credentials_ciphertext == before.credentials_ciphertext
    [announcement] = world.publisher.events()
    assert isinstance(announcement, StripeAuthorizationRequired)

    world.stripe.grant("code_again")
    outcome = await complete_stripe_authorization(
        world.deps, StripeCallback(state_of(pending.authorize_url), "code_again")
    )

    assert outcome.result is AuthorizationResult.CONNECTED
    assert outcome.connection_id == connection_id
    after = await world.connections.get(connection_id)
    assert after is not None
    assert after.status is ConnectionStatus.CONNECTED
    assert after.pending_reconnect is None
    assert after.connected_at == before.connected_at
    assert after.credentials_ciphertext is not None
    credentials = world.cipher.decrypt(after.credentials_ciphertext)
    assert credentials.api_key.get_secret_value() == SECOND_STRIPE_KEY
    reconnected = [e for e in world.publisher.events() if isinstance(e, ProcessorReconnected)]
    assert [(e.connection_id, e.processor_account_id) for e in reconnected] == [
        (connection_id, STRIPE_ACCOUNT)
    ]


async def test_a_key_of_another_stripe_account_is_refused_and_nothing_changes(world: World) -> None:
    connection_id = await lost_stripe_connection(world)
    before = await world.connections.get(connection_id)

    with pytest.raises(ConnectionRefused) as refused:
        await connect_stripe(world.deps, stripe(OTHER_STRIPE_KEY))

    assert refused.value.code is RefusalCode.DIFFERENT_PROCESSOR_ACCOUNT
    assert await world.connections.get(connection_id) == before
    assert world.publisher.published == []


async def test_authorizing_another_stripe_account_keeps_the_connection_lost(world: World) -> None:
    connection_id = await lost_stripe_connection(world)
    pending = await connect_stripe(world.deps, stripe())
    world.stripe.grant("code_other", stripe_user_id=OTHER_STRIPE_ACCOUNT)

    outcome = await complete_stripe_authorization(
        world.deps, StripeCallback(state_of(pending.authorize_url), "code_other")
    )

    assert outcome.result is AuthorizationResult.ERROR
    assert outcome.code is RefusalCode.DIFFERENT_PROCESSOR_ACCOUNT
    after = await world.connections.get(connection_id)
    assert after is not None
    assert after.status is ConnectionStatus.NEEDS_RECONNECT
    assert after.pending_reconnect is None
    assert OTHER_STRIPE_ACCOUNT not in world.stripe.grants
    assert world.publisher.events(ProcessorReconnected) == []


async def test_denying_at_stripe_keeps_the_connection_and_its_history(world: World) -> None:
    connection_id = await lost_stripe_connection(world)
    pending = await connect_stripe(world.deps, stripe())

    outcome = await complete_stripe_authorization(
        world.deps, StripeCallback(state_of(pending.authorize_url), error="access_denied")
    )

    assert outcome.result is AuthorizationResult.DENIED
    after = await world.connections.get(connection_id)
    assert after is not None
    assert after.status is ConnectionStatus.NEEDS_RECONNECT
    assert after.pending_reconnect is None


async def test_a_redelivered_intake_request_reconnects_once(world: World) -> None:
    connection_id = await lost_chargebee_connection(world)
    request = ChargebeeCredentialsSubmitted(
        account_id=ACCOUNT,
        site=CHARGEBEE_SITE,
        api_key_sealed=seal(public_key_b64(world), NEW_CHARGEBEE_KEY),
        contact_email="owner@acme.example",
    )

    assert await handle_onboarding_request(world.deps, request) == "connected"
    assert await handle_onboarding_request(world.deps, request) == REPLAYED

    reconnected = [e for e in world.publisher.events() if isinstance(e, ProcessorReconnected)]
    assert [e.connection_id for e in reconnected] == [connection_id]
    assert world.publisher.events(ConnectionRejected) == []
