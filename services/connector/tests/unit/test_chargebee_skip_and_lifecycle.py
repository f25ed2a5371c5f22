"""Chargebee connections, skipping, disconnecting, re-syncing and following the importer."""

from __future__ import annotations

import pytest
from connector.domain.connection import OFFER_FEATURES, ImportStatus
from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.service.connect_chargebee import ChargebeeCredentialsSubmission, connect_chargebee
from connector.service.disconnect import disconnect
from connector.service.read_connection import read_connection
from connector.service.request_import import request_import
from connector.service.skip_connection import SkipRequest, skip_connection
from connector.service.track_imports import track_import
from connector_fakes import CHARGEBEE_KEY, World
from contracts.connections import ConnectionStatus
from contracts.events import (
    SKIP_DISABLED_FEATURES,
    ImportCompleted,
    ImportFailed,
    ImportRequested,
    ImportStarted,
    Mode,
    Processor,
    ProcessorConnected,
    ProcessorDisconnected,
    ProcessorSkipped,
)
from pydantic import SecretStr

ACCOUNT = "acc_cb"


def chargebee(site: str = "acme-test", key: str = CHARGEBEE_KEY) -> ChargebeeCredentialsSubmission:
    return ChargebeeCredentialsSubmission(
        account_id=ACCOUNT, site=site, api_key=SecretStr(key), contact_email="billing@acme.example"
    )


async def test_chargebee_connects_records_the_catalog_and_starts_the_import(world: World) -> None:
    world.chargebee.catalog = "1.0"

    connected = await connect_chargebee(world.deps, chargebee())

    stored = await world.connections.get(connected.connection_id)
    assert stored is not None
    assert stored.status is ConnectionStatus.CONNECTED
    assert (stored.site, stored.product_catalog, stored.mode) == ("acme-test", "1.0", Mode.TEST)
    assert stored.credentials_ciphertext is not None
    assert CHARGEBEE_KEY not in stored.credentials_ciphertext
    [event] = world.publisher.events()
    assert isinstance(event, ProcessorConnected)
    assert (event.processor, event.mode, event.import_id) == (
        Processor.CHARGEBEE,
        Mode.TEST,
        connected.import_id,
    )
    assert stored.latest_import is not None
    assert stored.latest_import.import_id == connected.import_id


async def test_a_live_site_is_live_mode(world: World) -> None:
    assert (await connect_chargebee(world.deps, chargebee(site="acme"))).mode is Mode.LIVE


@pytest.mark.parametrize("site", ["evil.example", "acme.chargebee.com", "ACME", "acme/..", "-x"])
async def test_a_bad_site_name_never_reaches_chargebee(world: World, site: str) -> None:
    with pytest.raises(ConnectionRefused) as refused:
        await connect_chargebee(world.deps, chargebee(site=site))

    assert refused.value.code is RefusalCode.INVALID_SITE
    assert world.chargebee.calls == []


async def test_a_rejected_key_stores_and_announces_nothing(world: World) -> None:
    world.chargebee.refusal = ConnectionRefused(RefusalCode.KEY_REJECTED, "no")

    with pytest.raises(ConnectionRefused):
        await connect_chargebee(world.deps, chargebee())

    assert world.connections.documents == {}
    assert world.publisher.published == []


async def test_a_second_connect_is_refused(world: World) -> None:
    await connect_chargebee(world.deps, chargebee())

    with pytest.raises(ConnectionRefused) as refused:
        await connect_chargebee(world.deps, chargebee())

    assert refused.value.code is RefusalCode.ALREADY_CONNECTED


async def test_two_concurrent_connects_store_exactly_one(world: World) -> None:
    import asyncio

    results = await asyncio.gather(
        connect_chargebee(world.deps, chargebee()),
        connect_chargebee(world.deps, chargebee()),
        return_exceptions=True,
    )

    refusals = [r for r in results if isinstance(r, ConnectionRefused)]
    assert len(refusals) == 1
    assert refusals[0].code is RefusalCode.ALREADY_CONNECTED
    assert len(world.connections.documents) == 1
    assert len(world.publisher.events(ProcessorConnected)) == 1


async def test_skipping_turns_off_the_features_that_need_a_processor(world: World) -> None:
    skipped = await skip_connection(world.deps, SkipRequest(ACCOUNT, contact_email="o@acme.example"))

    assert skipped.disabled_features == SKIP_DISABLED_FEATURES
    [event] = world.publisher.events()
    assert isinstance(event, ProcessorSkipped)
    assert event.disabled_features == list(SKIP_DISABLED_FEATURES)
    summary = await read_connection(world.deps, ACCOUNT)
    assert summary.status is ConnectionStatus.SKIPPED
    assert {f for f, on in summary.features.items() if not on} == set(SKIP_DISABLED_FEATURES)


async def test_skipping_twice_answers_again_without_a_second_connection(world: World) -> None:
    await skip_connection(world.deps, SkipRequest(ACCOUNT))
    await skip_connection(world.deps, SkipRequest(ACCOUNT))

    assert len(world.connections.documents) == 1
    assert len(world.publisher.events(ProcessorSkipped)) == 2


async def test_a_skipped_account_can_connect_later(world: World) -> None:
    await skip_connection(world.deps, SkipRequest(ACCOUNT))

    await connect_chargebee(world.deps, chargebee())

    summary = await read_connection(world.deps, ACCOUNT)
    assert summary.status is ConnectionStatus.CONNECTED
    assert all(summary.features.values())


async def test_a_connected_account_cannot_skip(world: World) -> None:
    await connect_chargebee(world.deps, chargebee())

    with pytest.raises(ConnectionRefused) as refused:
        await skip_connection(world.deps, SkipRequest(ACCOUNT))

    assert refused.value.code is RefusalCode.ALREADY_CONNECTED


async def test_an_account_that_never_chose_has_no_connection(world: World) -> None:
    with pytest.raises(ConnectionRefused) as refused:
        await read_connection(world.deps, "nobody")
    assert refused.value.code is RefusalCode.CONNECTION_NOT_FOUND


async def test_disconnecting_destroys_the_credentials_and_announces_it(world: World) -> None:
    connected = await connect_chargebee(world.deps, chargebee())

    await disconnect(world.deps, ACCOUNT)

    stored = await world.connections.get(connected.connection_id)
    assert stored is not None
    assert stored.status is ConnectionStatus.DISCONNECTED
    assert stored.credentials_ciphertext is None
    assert stored.disconnected_at == world.clock.now
    [event] = world.publisher.events(ProcessorDisconnected)
    assert isinstance(event, ProcessorDisconnected)
    assert event.connection_id == connected.connection_id
    summary = await read_connection(world.deps, ACCOUNT)
    assert summary.status is ConnectionStatus.DISCONNECTED
    assert not summary.features[next(iter(SKIP_DISABLED_FEATURES))]


async def test_disconnecting_twice_is_harmless_and_never_connected_is_not_found(world: World) -> None:
    await connect_chargebee(world.deps, chargebee())
    await disconnect(world.deps, ACCOUNT)
    await disconnect(world.deps, ACCOUNT)

    assert len(world.publisher.events(ProcessorDisconnected)) == 1
    with pytest.raises(ConnectionRefused) as refused:
        await disconnect(world.deps, "nobody")
    assert refused.value.code is RefusalCode.CONNECTION_NOT_FOUND


async def test_a_disconnect_with_erase_asks_the_importer_to_erase(world: World) -> None:
    connected = await connect_chargebee(world.deps, chargebee())

    await disconnect(world.deps, ACCOUNT, erase=True)

    [event] = world.publisher.events(ProcessorDisconnected)
    assert isinstance(event, ProcessorDisconnected)
    assert (event.connection_id, event.erase) == (connected.connection_id, True)
    stored = await world.connections.get(connected.connection_id)
    assert stored is not None
    assert stored.credentials_ciphertext is None


async def test_a_connection_needing_reconnect_can_be_disconnected_with_erase(world: World) -> None:
    connected = await connect_chargebee(world.deps, chargebee())
    world.connections.lose(connected.connection_id)

    await disconnect(world.deps, ACCOUNT, erase=True)

    [event] = world.publisher.events(ProcessorDisconnected)
    assert isinstance(event, ProcessorDisconnected)
    assert (event.connection_id, event.erase) == (connected.connection_id, True)
    stored = await world.connections.get(connected.connection_id)
    assert stored is not None
    assert stored.status is ConnectionStatus.DISCONNECTED


async def test_an_erase_after_a_plain_disconnect_is_announced_for_the_last_connection(world: World) -> None:
    connected = await connect_chargebee(world.deps, chargebee())
    await disconnect(world.deps, ACCOUNT)

    await disconnect(world.deps, ACCOUNT, erase=True)

    kept, erased = world.publisher.events(ProcessorDisconnected)
    assert isinstance(kept, ProcessorDisconnected)
    assert isinstance(erased, ProcessorDisconnected)
    assert (kept.erase, erased.erase) == (False, True)
    assert erased.connection_id == connected.connection_id
    stored = await world.connections.get(connected.connection_id)
    assert stored is not None
    assert stored.status is ConnectionStatus.DISCONNECTED


async def finish_import(world: World, import_id: str) -> None:
    """The importer's word that the import failed, as the connector follows it."""
    failed = ImportFailed(
        account_id=ACCOUNT,
        import_id=import_id,
        code="processor_unavailable",
        message="down",
        contact_email="billing@acme.example",
    )
    assert await track_import(world.deps, failed) == "failed"


async def test_a_resync_requests_a_fresh_import(world: World) -> None:
    connected = await connect_chargebee(world.deps, chargebee())
    assert connected.import_id is not None
    await finish_import(world, connected.import_id)

    import_id = await request_import(world.deps, ACCOUNT)

    assert import_id != connected.import_id
    [event] = world.publisher.events(ImportRequested)
    assert isinstance(event, ImportRequested)
    assert (event.import_id, event.connection_id, event.processor) == (
        import_id,
        connected.connection_id,
        Processor.CHARGEBEE,
    )
    summary = await read_connection(world.deps, ACCOUNT)
    assert summary.latest_import is not None
    assert (summary.latest_import.import_id, summary.latest_import.status) == (import_id, ImportStatus.QUEUED)


async def test_no_second_import_while_one_is_queued_or_running(world: World) -> None:
    connected = await connect_chargebee(world.deps, chargebee())

    with pytest.raises(ConnectionRefused) as queued:
        await request_import(world.deps, ACCOUNT)
    started = ImportStarted(account_id=ACCOUNT, import_id=connected.import_id, processor=Processor.CHARGEBEE)
    await track_import(world.deps, started)
    with pytest.raises(ConnectionRefused) as running:
        await request_import(world.deps, ACCOUNT)

    assert (queued.value.code, running.value.code) == (RefusalCode.IMPORT_IN_PROGRESS,) * 2
    assert world.publisher.events(ImportRequested) == []
    assert connected.import_id is not None
    await finish_import(world, connected.import_id)
    assert await request_import(world.deps, ACCOUNT)
    with pytest.raises(ConnectionRefused) as again:
        await request_import(world.deps, ACCOUNT)
    assert again.value.code is RefusalCode.IMPORT_IN_PROGRESS
    assert len(world.publisher.events(ImportRequested)) == 1


async def test_only_a_connected_account_can_resync(world: World) -> None:
    with pytest.raises(ConnectionRefused) as never:
        await request_import(world.deps, ACCOUNT)
    await skip_connection(world.deps, SkipRequest(ACCOUNT))
    with pytest.raises(ConnectionRefused) as skipped:
        await request_import(world.deps, ACCOUNT)

    assert (never.value.code, skipped.value.code) == (
        RefusalCode.CONNECTION_NOT_FOUND,
        RefusalCode.NOT_CONNECTED,
    )


async def test_the_latest_import_follows_the_importer_and_never_goes_back(world: World) -> None:
    connected = await connect_chargebee(world.deps, chargebee())
    import_id = connected.import_id

    started = ImportStarted(account_id=ACCOUNT, import_id=import_id, processor=Processor.CHARGEBEE)
    assert await track_import(world.deps, started) == "running"
    completed = ImportCompleted(
        account_id=ACCOUNT,
        import_id=import_id,
        processor=Processor.CHARGEBEE,
        resources={},
        past_cancellations=0,
        started_at=started.occurred_at,
        finished_at=started.occurred_at,
        contact_email="billing@acme.example",
    )
    assert await track_import(world.deps, completed) == "completed"
    assert await track_import(world.deps, started) == "not_latest"

    summary = await read_connection(world.deps, ACCOUNT)
    assert summary.latest_import is not None
    assert summary.latest_import.status is ImportStatus.COMPLETED
    assert summary.latest_import.finished_at == completed.occurred_at


async def test_a_failed_import_keeps_its_code_and_other_imports_are_ignored(world: World) -> None:
    connected = await connect_chargebee(world.deps, chargebee())
    failed = ImportFailed(
        account_id=ACCOUNT,
        import_id=connected.import_id,
        code="key_revoked",
        message="m",
        contact_email="x@y.z",
    )
    unknown = ImportFailed(
        account_id=ACCOUNT, import_id="imp_other", code="c", message="m", contact_email="x@y.z"
    )

    assert await track_import(world.deps, failed) == "failed"
    assert await track_import(world.deps, unknown) == "not_latest"

    summary = await read_connection(world.deps, ACCOUNT)
    assert summary.latest_import is not None
    assert (summary.latest_import.status, summary.latest_import.error_code) == (
        ImportStatus.FAILED,
        "key_revoked",
    )


async def test_a_read_only_chargebee_key_connects_without_offers(world: World) -> None:
    world.chargebee.write_refused = "read_only_key"

    await connect_chargebee(world.deps, chargebee())

    summary = await read_connection(world.deps, ACCOUNT)
    assert summary.status is ConnectionStatus.CONNECTED
    assert {f for f, on in summary.features.items() if not on} == set(OFFER_FEATURES)
    assert summary.feature_reasons == dict.fromkeys(OFFER_FEATURES, "read_only_key")


async def test_the_skip_answer_keeps_listing_the_offers_off(world: World) -> None:
    await skip_connection(world.deps, SkipRequest(ACCOUNT))

    summary = await read_connection(world.deps, ACCOUNT)
    assert not any(summary.features[f] for f in OFFER_FEATURES)
    assert summary.feature_reasons == dict.fromkeys(OFFER_FEATURES, "skipped")
