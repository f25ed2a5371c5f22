"""Lost credentials over fakes: connected → needs_reconnect once, ConnectionLost once, what stays on
and what stops (SPEC "Connection lifecycle")."""

from __future__ import annotations

import dataclasses

import httpx
from connector.domain.connection import OFFER_FEATURES, Connection, feature_reasons, features_of
from connector.service.connect_chargebee import ChargebeeCredentialsSubmission, connect_chargebee
from connector.service.disconnect import disconnect
from connector.service.lose_credentials import lose_credentials
from connector.service.read_connection import read_connection
from connector.service.track_imports import track_import
from connector_fakes import CHARGEBEE_KEY, SyncStatesByConnection, World
from connector_unit_kit import auth
from contracts.connections import ConnectionStatus
from contracts.events import (
    ConnectionLost,
    Feature,
    ImportFailed,
    Processor,
    ProcessorDisconnected,
)
from contracts.runtime.metrics import REGISTRY
from contracts.sync import StoredSyncState, SyncStatus
from pydantic import SecretStr

ACCOUNT = "acc_lost"
EMAIL = "owner@lost.example"


async def connected(world: World) -> str:
    result = await connect_chargebee(
        world.deps,
        ChargebeeCredentialsSubmission(
            account_id=ACCOUNT, site="acme-test", api_key=SecretStr(CHARGEBEE_KEY), contact_email=EMAIL
        ),
    )
    world.publisher.published.clear()
    return result.connection_id


def stored(world: World, connection_id: str) -> Connection:
    return world.connections.documents[connection_id].connection


def test_needs_reconnect_keeps_the_history_features_and_turns_the_offers_off() -> None:
    on = features_of(ConnectionStatus.NEEDS_RECONNECT, write_access=True)

    assert {feature for feature, value in on.items() if not value} == set(OFFER_FEATURES)
    assert on[Feature.PAST_CANCELLATIONS]
    assert on[Feature.CHURN_METRICS]
    assert on[Feature.RECOVERED_REVENUE]


async def test_reasons_name_needs_reconnect_for_the_offers(world: World) -> None:
    connection_id = await connected(world)
    await lose_credentials(world.deps, connection_id, "credentials_rejected")

    reasons = feature_reasons(stored(world, connection_id))

    assert reasons == dict.fromkeys(OFFER_FEATURES, "needs_reconnect")


def losses_counted(reason: str) -> float:
    labels = {"processor": "chargebee", "reason": reason}
    return REGISTRY.get_sample_value("connector_connections_lost_total", labels) or 0.0


async def test_a_loss_moves_a_connected_connection_and_announces_it_once(world: World) -> None:
    connection_id = await connected(world)
    counted_before = losses_counted("credentials_rejected")

    first = await lose_credentials(world.deps, connection_id, "credentials_rejected")
    again = await lose_credentials(world.deps, connection_id, "deauthorized")

    assert (first, again) == (True, False)
    assert losses_counted("credentials_rejected") == counted_before + 1
    connection = stored(world, connection_id)
    assert connection.status is ConnectionStatus.NEEDS_RECONNECT
    assert connection.active
    assert connection.loss_reason == "credentials_rejected"
    [event] = world.publisher.events()
    assert isinstance(event, ConnectionLost)
    assert (event.account_id, event.connection_id, event.processor) == (
        ACCOUNT,
        connection_id,
        Processor.CHARGEBEE,
    )
    assert (event.reason, event.contact_email) == ("credentials_rejected", EMAIL)


async def test_the_event_waits_in_the_outbox_when_the_broker_is_down(world: World) -> None:
    connection_id = await connected(world)
    world.connections.documents[connection_id].outbox.clear()
    world.publisher.failing = True

    assert await lose_credentials(world.deps, connection_id, "deauthorized")

    [pending] = world.connections.documents[connection_id].outbox
    assert isinstance(pending.event, ConnectionLost)
    assert stored(world, connection_id).status is ConnectionStatus.NEEDS_RECONNECT


async def test_a_report_naming_another_account_or_an_unknown_connection_changes_nothing(world: World) -> None:
    connection_id = await connected(world)

    assert not await lose_credentials(world.deps, connection_id, "deauthorized", account_id="acc_other")
    assert not await lose_credentials(world.deps, "con_unknown", "deauthorized")

    assert stored(world, connection_id).status is ConnectionStatus.CONNECTED
    assert world.publisher.events() == []


async def test_a_disconnected_connection_does_not_come_back_as_needs_reconnect(world: World) -> None:
    connection_id = await connected(world)
    await disconnect(world.deps, ACCOUNT)

    assert not await lose_credentials(world.deps, connection_id, "credentials_rejected")

    assert stored(world, connection_id).status is ConnectionStatus.DISCONNECTED
    assert world.publisher.events(ConnectionLost) == []


async def test_an_import_refused_with_credentials_rejected_loses_the_connection(world: World) -> None:
    connection_id = await connected(world)
    import_id = stored(world, connection_id).latest_import.import_id  # type: ignore[union-attr]
    failed = ImportFailed(
        account_id=ACCOUNT,
        import_id=import_id,
        code="credentials_rejected",
        message="Chargebee answered 401",
        contact_email=EMAIL,
    )

    assert await track_import(world.deps, failed) == "credentials_lost"
    assert await track_import(world.deps, failed) == "not_latest"  # redelivered

    assert stored(world, connection_id).status is ConnectionStatus.NEEDS_RECONNECT
    assert len(world.publisher.events(ConnectionLost)) == 1


async def test_an_import_failing_for_another_reason_keeps_the_connection(world: World) -> None:
    connection_id = await connected(world)
    import_id = stored(world, connection_id).latest_import.import_id  # type: ignore[union-attr]
    failed = ImportFailed(
        account_id=ACCOUNT, import_id=import_id, code="page_failed", message="m", contact_email=EMAIL
    )

    await track_import(world.deps, failed)

    assert stored(world, connection_id).status is ConnectionStatus.CONNECTED


async def test_the_connection_reads_needs_reconnect_with_sync_stopped(world: World) -> None:
    connection_id = await connected(world)
    await lose_credentials(world.deps, connection_id, "credentials_rejected")

    summary = await read_connection(world.deps, ACCOUNT)

    assert summary.status is ConnectionStatus.NEEDS_RECONNECT
    assert summary.features[Feature.PAST_CANCELLATIONS] is True
    assert summary.features[Feature.COUPON_OFFERS] is False


async def test_the_http_view_offers_and_delete_while_needs_reconnect(
    world: World, api: httpx.AsyncClient
) -> None:
    connection_id = await connected(world)
    await lose_credentials(world.deps, connection_id, "deauthorized")

    view = await api.get(f"/v1/accounts/{ACCOUNT}/connection", headers=auth(ACCOUNT))
    offer = await api.post(
        f"/v1/accounts/{ACCOUNT}/offers",
        json={"kind": "trial_extension", "subscription_id": "sub_1", "days": 7},
        headers={**auth(ACCOUNT), "Idempotency-Key": "k-1"},
    )
    deleted = await api.delete(f"/v1/accounts/{ACCOUNT}/connection", headers=auth(ACCOUNT))

    assert view.status_code == 200
    body = view.json()
    assert body["status"] == "needs_reconnect"
    assert body["features"] == {
        "past_cancellations": True,
        "churn_metrics": True,
        "recovered_revenue": True,
        "coupon_offers": False,
        "trial_extension_offers": False,
    }
    assert body["feature_reasons"]["coupon_offers"] == "needs_reconnect"
    assert offer.status_code == 409
    assert offer.json()["error"]["code"] == "feature_unavailable"
    assert deleted.status_code == 204
    assert stored(world, connection_id).status is ConnectionStatus.DISCONNECTED
    assert stored(world, connection_id).credentials_ciphertext is None
    assert [type(e) for e in world.publisher.events()] == [ConnectionLost, ProcessorDisconnected]


async def test_sync_shows_stopped_while_needs_reconnect(world: World) -> None:
    connection_id = await connected(world)
    states = SyncStatesByConnection()
    # The importer may not have recorded its stop yet: the connection's status decides.
    states.states[connection_id] = StoredSyncState(
        connection_id=connection_id,
        account_id=ACCOUNT,
        processor=Processor.CHARGEBEE,
        status=SyncStatus.LIVE,
        synced_through=world.clock(),
    )
    world.deps = dataclasses.replace(world.deps, sync_states=states)
    await lose_credentials(world.deps, connection_id, "credentials_rejected")

    summary = await read_connection(world.deps, ACCOUNT)

    assert summary.sync is not None
    assert summary.sync.status is SyncStatus.STOPPED


async def test_reports_of_credentials_a_reconnect_replaced_change_nothing(world: World) -> None:
    connection_id = await connected(world)
    world.connections.documents[connection_id].connection = stored(world, connection_id).model_copy(
        update={"credentials_version": 2}
    )
    failed = ImportFailed(
        account_id=ACCOUNT,
        import_id="imp_stale",
        code="credentials_rejected",
        message="stripe answered 401",
        contact_email=EMAIL,
        credentials_version=1,
    )

    by_sync = await lose_credentials(world.deps, connection_id, "credentials_rejected", credentials_version=1)
    by_import = await track_import(world.deps, failed)

    assert not by_sync
    assert by_import != "credentials_lost"
    assert stored(world, connection_id).status is ConnectionStatus.CONNECTED
    assert world.publisher.events() == []
    assert await lose_credentials(world.deps, connection_id, "credentials_rejected", credentials_version=2)
    assert stored(world, connection_id).status is ConnectionStatus.NEEDS_RECONNECT
