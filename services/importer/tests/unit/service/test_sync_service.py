"""Sync's use cases over in-memory fakes: polls, webhooks, duplicates and reordering, deletions and
their tombstones, cancellations that come and go, connections that stop."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from contracts.connections import ConnectionStatus, StoredConnection
from contracts.events import Mode, Processor, ProcessorReconnected
from contracts.records import CanonicalRecord, CouponRecord, CustomerRecord
from contracts.sync import STRIPE_DEAUTHORIZED, CredentialsLost, ProcessorEventReceived, SyncStatus
from importer.domain.model import ImportJob, ImportStatus, StartImport
from importer.domain.ports import SourceUnavailable
from importer.domain.source import FetchedPage, RawObject, SourceError, SourceErrorCode, Window
from importer.domain.sync import (
    MAX_APPLIED_IDS,
    ListedEvents,
    ProcessorChange,
    SyncState,
    deauthorization_in,
    supersedes,
)
from importer.service.sync_apply import list_resource
from importer.service.sync_dependencies import SyncDependencies
from importer.service.sync_lifecycle import stop_after_loss
from importer.service.sync_poll import (
    RESYNC_RETRY_AFTER,
    apply_webhook_event,
    emit_due_ticks,
    measure_lag,
    poll_account,
)
from importer.service.sync_resume import resume_after_reconnect
from importer.service.sync_work import SyncWork

ACCOUNT, CONNECTION, STRIPE_ACCOUNT = "acc_1", "con_1", "acct_1"
T0 = 1_790_000_000


class Clock:
    def __init__(self) -> None:
        self.now = datetime.fromtimestamp(T0 + 10, UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=5)
        return self.now


def subscription(status: str = "active", **extra: Any) -> dict[str, Any]:
    price = {
        "id": "price_1",
        "object": "price",
        "currency": "usd",
        "unit_amount": 1000,
        "recurring": {"interval": "month", "interval_count": 1},
        "product": "prod_1",
        "created": T0,
        "active": True,
        "type": "recurring",
    }
    return {
        "id": "sub_1",
        "object": "subscription",
        "created": T0,
        "currency": "usd",
        "customer": "cus_1",
        "status": status,
        "start_date": T0,
        "canceled_at": T0 + 5 if status == "canceled" else None,
        "ended_at": T0 + 5 if status == "canceled" else None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "discounts": [],
        "items": {"object": "list", "data": [{"id": "si_1", "price": price, "quantity": 1}]},
        **extra,
    }


def customer(email: str) -> dict[str, Any]:
    return {"id": "cus_1", "object": "customer", "created": T0, "email": email, "name": "Ann"}


class FakeProcessor:
    """The processor's current objects and its event list."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[ProcessorChange] = []
        self.reads = 0
        #: List pages served (a listing of a resource reads it all, 100 objects a page).
        self.pages = 0
        #: The windows of creation time list pages were asked for.
        self.windows: list[Window] = []
        self.list_chains = 1
        self.lost = False
        #: Which of the connection's credentials this reader holds (what a 401 reports).
        self.credentials_version = 0
        #: Events one read of the list serves at most (a poll's cap); ``None``: all of them.
        self.events_cap: int | None = None
        #: The ``after`` of each read of the event list.
        self.event_reads: list[str | None] = []
        #: Products by id: a price or plan listed by product has its product expanded from here
        #: (a product deleted stays an id, as the fake Stripe serves it).
        self.products: dict[str, dict[str, Any]] = {}

    def change(
        self, resource: str, raw: dict[str, Any] | None, event_type: str, created: int
    ) -> ProcessorChange:
        object_id = "cus_1" if resource == "customers" else "sub_1"
        if raw is None:
            self.objects.pop((resource, object_id), None)
        else:
            self.objects[(resource, object_id)] = raw
        object_type = resource.removesuffix("s")
        event = ProcessorChange(f"evt_{len(self.events)}", event_type, created, object_type, object_id)
        self.events.append(event)
        return event

    async def events_since(self, cursor_s: int, *, after: str | None = None) -> ListedEvents:
        if self.lost:
            raise SourceError(
                SourceErrorCode.KEY_REJECTED,
                "401",
                retryable=False,
                status=401,
                credentials_version=self.credentials_version,
            )
        self.event_reads.append(after)
        # Newest first, as Stripe lists them: ties in reverse order of creation.
        listed = sorted((e for e in self.events if e.created >= cursor_s), key=lambda e: e.created)[::-1]
        if after is not None:
            listed = listed[[e.event_id for e in listed].index(after) + 1 :]
        if self.events_cap is None or len(listed) <= self.events_cap:
            return ListedEvents(listed)
        read = listed[: self.events_cap]
        return ListedEvents(read, complete=False, continue_after=read[-1].event_id)

    async def list_of_product(self, resource: str, product_id: str, cursor: str | None) -> FetchedPage:
        self.pages += 1
        await asyncio.sleep(0)
        listed = sorted(
            object_id
            for (kind, object_id), raw in self.objects.items()
            if kind == resource and raw["product"] == product_id
        )
        start = 0 if cursor is None else listed.index(cursor) + 1
        ids = listed[start : start + 2]  # small pages: a product's prices take several
        more = start + 2 < len(listed)
        objects = [copy.deepcopy(self.objects[(resource, object_id)]) for object_id in ids]
        for raw in objects:
            raw["product"] = copy.deepcopy(self.products.get(product_id, product_id))
        return FetchedPage(objects=objects, next_cursor=ids[-1] if more else None)

    async def retrieve(self, resource: str, object_id: str) -> RawObject | None:
        self.reads += 1
        await asyncio.sleep(0)  # a request: other work runs meanwhile
        found = self.objects.get((resource, object_id))
        return None if found is None else copy.deepcopy(found)

    async def list_page(self, resource: str, window: Window, cursor: str | None) -> FetchedPage:
        self.pages += 1
        self.windows.append(window)
        await asyncio.sleep(0)
        listed = sorted(
            object_id
            for (kind, object_id), raw in self.objects.items()
            if kind == resource and window.contains(raw["created"])
        )
        start = 0 if cursor is None else listed.index(cursor) + 1
        ids = listed[start : start + 100]
        more = start + 100 < len(listed)
        return FetchedPage(
            objects=[copy.deepcopy(self.objects[(resource, object_id)]) for object_id in ids],
            next_cursor=ids[-1] if more else None,
        )

    def version_of(self, raw: RawObject, read_at_ms: int) -> int:
        return read_at_ms


class Readers:
    def __init__(self, processor: FakeProcessor) -> None:
        self.processor = processor
        self.connected = True
        #: What the store says of the connection (the connector may have moved it meanwhile).
        self.status = ConnectionStatus.CONNECTED
        #: The stored credentials' version (a reconnect counts one more).
        self.credentials_version = 0
        self.forgotten: list[str] = []

    async def reader_for(self, connection_id: str, account_id: str) -> FakeProcessor:
        if not self.connected:
            raise SourceUnavailable("the connection is disconnected, not connected")
        return self.processor

    async def connection(self, connection_id: str) -> StoredConnection | None:
        return StoredConnection(
            connection_id=connection_id,
            account_id=ACCOUNT,
            processor=Processor.STRIPE,
            status=self.status,
            processor_account_id=STRIPE_ACCOUNT,
            created_at=datetime.fromtimestamp(T0, UTC),
            credentials_version=self.credentials_version,
        )

    def forget(self, connection_id: str) -> None:
        self.forgotten.append(connection_id)


@dataclass
class Records:
    documents: dict[tuple[str, str], tuple[CanonicalRecord, int]] = field(default_factory=dict)
    writes: int = 0
    #: Reads of a collection's creation times.
    look_ups: int = 0

    async def put(self, record: CanonicalRecord, version: int, now: datetime) -> bool:
        stored = self.documents.get((record.collection, record.key()))
        if stored is not None and not supersedes(version, stored[1]):
            return False
        self.documents[(record.collection, record.key())] = (record, version)
        self.writes += 1
        return True

    async def put_many(self, records: Sequence[tuple[CanonicalRecord, int]], now: datetime) -> list[bool]:
        return [await self.put(record, version, now) for record, version in records]

    async def move_versions(self, moves: Sequence[tuple[CanonicalRecord, int, int]]) -> bool:
        moved = True
        for record, known, newer in moves:
            stored = self.documents.get((record.collection, record.key()))
            if stored is None or stored[1] != known:
                moved = False
                continue
            self.documents[(record.collection, record.key())] = (stored[0], newer)
        return moved

    async def has(self, collection: str, key: str) -> bool:
        return (collection, key) in self.documents

    async def created_times(self, collection: str, account_id: str, processor: str) -> list[int]:
        self.look_ups += 1
        return [
            int(record.created_at.timestamp())
            for (kind, _), (record, _) in self.documents.items()
            if kind == collection and record.created_at is not None
        ]

    async def remove(self, collection: str, key: str) -> bool:
        return self.documents.pop((collection, key), None) is not None

    async def coupons(self, account_id: str, processor: str) -> dict[str, CouponRecord]:
        return {}

    def get(self, collection: str, object_id: str) -> Any:
        found = self.documents.get((collection, f"{ACCOUNT}:stripe:{object_id}"))
        return None if found is None else found[0]


@dataclass
class Publisher:
    records: list[CanonicalRecord] = field(default_factory=list)
    tombstones: list[tuple[str, str]] = field(default_factory=list)
    ticks: list[str] = field(default_factory=list)
    reports: list[CredentialsLost] = field(default_factory=list)

    async def publish_records(self, records: Sequence[CanonicalRecord]) -> None:
        self.records.extend(records)

    async def publish_tombstones(self, keys: Sequence[tuple[str, str]]) -> None:
        self.tombstones.extend(keys)

    async def publish_ticks(self, states: Sequence[SyncState]) -> None:
        self.ticks.extend(state.connection_id for state in states)

    async def report_credentials_lost(self, report: CredentialsLost) -> None:
        self.reports.append(report)


class States:
    def __init__(self) -> None:
        self.states: dict[str, SyncState] = {}
        self.due: dict[str, datetime] = {}

    async def begin(self, state: SyncState, now: datetime, interval_s: float) -> None:
        self.states[state.connection_id] = state
        self.due[state.connection_id] = now

    async def get(self, connection_id: str) -> SyncState | None:
        return self.states.get(connection_id)

    async def running_for(self, processor: str, processor_account_id: str) -> list[SyncState]:
        return [s for s in self.states.values() if s.status != SyncStatus.STOPPED]

    async def claim_due(self, now: datetime, interval_s: float, limit: int) -> list[SyncState]:
        due = [
            s
            for s in self.states.values()
            if s.status != SyncStatus.STOPPED and self.due[s.connection_id] <= now
        ]
        for state in due:
            self.due[state.connection_id] = now + timedelta(seconds=interval_s)
        return due

    async def record_poll(self, connection_id: str, **changes: Any) -> None:
        state = self.states[connection_id]
        through = changes["synced_through"]
        self.states[connection_id] = replace(
            state,
            cursor_s=changes["cursor_s"],
            applied_ids=tuple(changes["applied_ids"]),
            status=state.status if through is None else SyncStatus.LIVE.value,
            synced_through=through or state.synced_through,
            last_event_at=changes["last_event_at"] or state.last_event_at,
            sweep=changes["sweep"],
        )

    async def record_applied(self, connection_id: str, event_id: str, created: datetime) -> None:
        state = self.states[connection_id]
        applied = (*state.applied_ids, event_id)[-MAX_APPLIED_IDS:]
        self.states[connection_id] = replace(state, applied_ids=applied)

    async def catch_up_with_import(self, connection_id: str, import_id: str, now: datetime) -> None:
        self.states[connection_id] = replace(self.states[connection_id], resync_import_id=import_id)

    async def stop(self, connection_id: str, reason: str, now: datetime) -> bool:
        self.states[connection_id] = replace(self.states[connection_id], status=SyncStatus.STOPPED.value)
        return True

    async def remove(self, connection_id: str) -> bool:
        self.due.pop(connection_id, None)
        return self.states.pop(connection_id, None) is not None

    async def resume(self, connection_id: str, now: datetime, interval_s: float) -> bool:
        if connection_id not in self.states:
            return False
        self.states[connection_id] = replace(
            self.states[connection_id], status=SyncStatus.CATCHING_UP.value, resync_import_id=None
        )
        self.due[connection_id] = now
        return True

    async def lag_summary(self) -> tuple[int, datetime | None]:
        running = [s for s in self.states.values() if s.status != SyncStatus.STOPPED]
        moments = [s.synced_through for s in running if s.synced_through is not None]
        return len(running), min(moments, default=None)


@dataclass
class World:
    processor: FakeProcessor
    readers: Readers
    records: Records
    publisher: Publisher
    states: States
    deps: SyncDependencies
    imports: list[StartImport]


@pytest.fixture
async def world() -> World:
    processor, records, publisher, states = FakeProcessor(), Records(), Publisher(), States()
    readers = Readers(processor)
    imports: list[StartImport] = []

    async def start_full_import(command: StartImport) -> None:
        imports.append(command)

    clock = Clock()
    deps = SyncDependencies(
        states=states,
        records=records,
        readers=readers,
        publisher=publisher,
        start_full_import=start_full_import,
        interval_s=60,
        clock=clock,
    )
    state = SyncState(CONNECTION, ACCOUNT, Processor.STRIPE, STRIPE_ACCOUNT, "catching_up", cursor_s=T0)
    await states.begin(state, clock(), 60)
    return World(processor, readers, records, publisher, states, deps, imports)


def webhook(event: ProcessorChange) -> ProcessorEventReceived:
    return ProcessorEventReceived(
        processor=Processor.STRIPE,
        processor_account_id=STRIPE_ACCOUNT,
        processor_event_id=event.event_id,
        event_type=event.event_type,
        created=datetime.fromtimestamp(event.created, UTC),
        object_type=event.object_type,
        object_id=event.object_id,
    )


async def test_a_poll_stores_the_current_state_and_moves_the_cursor(world: World) -> None:
    world.processor.change("customers", customer("a@x.example"), "customer.created", T0 + 1)
    world.processor.change("customers", customer("b@x.example"), "customer.updated", T0 + 2)

    assert await poll_account(world.deps, CONNECTION) == "polled"

    assert world.records.get("customers", "cus_1").email == "b@x.example"
    assert world.processor.reads == 1  # two events of one object: one read
    state = world.states.states[CONNECTION]
    assert (state.cursor_s, state.status) == (T0 + 2, SyncStatus.LIVE)
    assert state.last_event_at == datetime.fromtimestamp(T0 + 2, UTC)


async def test_duplicate_and_late_webhooks_never_take_a_record_back(world: World) -> None:
    first = world.processor.change("customers", customer("old@x.example"), "customer.created", T0 + 1)
    await apply_webhook_event(world.deps, webhook(first))
    world.processor.change("customers", customer("new@x.example"), "customer.updated", T0 + 2)
    await poll_account(world.deps, CONNECTION)

    # The first event again, late: the object is re-read, so nothing goes back.
    await apply_webhook_event(world.deps, webhook(first))
    await apply_webhook_event(world.deps, webhook(first))

    assert world.records.get("customers", "cus_1").email == "new@x.example"
    published = [r for r in world.publisher.records if isinstance(r, CustomerRecord)]
    assert published[-1].email == "new@x.example"


async def test_an_applied_webhook_is_skipped_by_the_next_poll(world: World) -> None:
    event = world.processor.change("customers", customer("a@x.example"), "customer.created", T0 + 1)
    await apply_webhook_event(world.deps, webhook(event))
    reads = world.processor.reads

    await poll_account(world.deps, CONNECTION)

    assert world.processor.reads == reads


async def test_a_dropped_webhook_is_recovered_by_the_poll(world: World) -> None:
    world.processor.change("customers", customer("a@x.example"), "customer.created", T0 + 1)
    assert world.records.get("customers", "cus_1") is None  # its webhook never came

    await poll_account(world.deps, CONNECTION)

    assert world.records.get("customers", "cus_1").email == "a@x.example"


async def test_a_deleted_object_leaves_the_store_with_a_tombstone(world: World) -> None:
    world.processor.change("customers", customer("a@x.example"), "customer.created", T0 + 1)
    await poll_account(world.deps, CONNECTION)
    deleted = world.processor.change("customers", None, "customer.deleted", T0 + 3)

    await apply_webhook_event(world.deps, webhook(deleted))
    await apply_webhook_event(world.deps, webhook(deleted))

    assert world.records.get("customers", "cus_1") is None
    assert world.publisher.tombstones == [("billing.customers.v1", f"{ACCOUNT}:stripe:cus_1")]


async def test_a_cancelled_subscription_becomes_a_cancellation_until_it_is_reactivated(world: World) -> None:
    world.processor.change("subscriptions", subscription(), "customer.subscription.created", T0 + 1)
    await poll_account(world.deps, CONNECTION)
    assert world.records.get("cancellations", "sub_1") is None

    world.processor.change("subscriptions", subscription("canceled"), "customer.subscription.deleted", T0 + 2)
    await poll_account(world.deps, CONNECTION)
    cancellation = world.records.get("cancellations", "sub_1")
    assert cancellation.mrr_lost.amount == 1000

    world.processor.change("subscriptions", subscription(), "customer.subscription.updated", T0 + 3)
    await poll_account(world.deps, CONNECTION)
    assert world.records.get("cancellations", "sub_1") is None
    assert ("billing.cancellations.v1", f"{ACCOUNT}:stripe:sub_1") in world.publisher.tombstones


async def test_a_401_stops_the_sync_and_reports_the_credentials_rejected(world: World) -> None:
    world.processor.lost = True
    assert await poll_account(world.deps, CONNECTION) == "credentials_lost"
    assert world.states.states[CONNECTION].status == SyncStatus.STOPPED
    assert await poll_account(world.deps, CONNECTION) == "skipped"
    assert await emit_due_ticks(world.deps) == 0
    [report] = world.publisher.reports
    assert (report.account_id, report.connection_id, report.reason) == (
        ACCOUNT,
        CONNECTION,
        "credentials_rejected",
    )
    assert CONNECTION in world.readers.forgotten


async def test_a_401_to_credentials_a_reconnect_replaced_keeps_the_sync(world: World) -> None:
    # This reader was built before the reconnect: the store holds the next credentials already.
    world.processor.lost = True
    world.readers.credentials_version = 1

    assert await poll_account(world.deps, CONNECTION) == "credentials_replaced"

    assert world.publisher.reports == []
    assert world.states.states[CONNECTION].status != SyncStatus.STOPPED
    assert CONNECTION in world.readers.forgotten
    world.processor.lost = False
    world.processor.credentials_version = 1
    assert await poll_account(world.deps, CONNECTION) == "polled"


async def test_a_401_report_names_the_credentials_refused(world: World) -> None:
    world.processor.lost = True
    world.processor.credentials_version = world.readers.credentials_version = 3

    assert await poll_account(world.deps, CONNECTION) == "credentials_lost"

    [report] = world.publisher.reports
    assert report.credentials_version == 3


def customer_changed(world: World, number: int, created: int) -> None:
    """Customer ``cus_<number>`` changed at ``created`` (its email says when), with its event."""
    raw = {**customer(f"{number}@{created}.example"), "id": f"cus_{number}"}
    world.processor.objects[("customers", f"cus_{number}")] = raw
    event_id = f"evt_{len(world.processor.events)}"
    world.processor.events.append(
        ProcessorChange(event_id, "customer.updated", created, "customer", f"cus_{number}")
    )


async def test_a_poll_cut_by_its_cap_is_read_on_by_the_next_polls_and_loses_no_event(world: World) -> None:
    # Ten customers changed, over three seconds; a poll reads four events (newest first) at most.
    world.processor.events_cap = 4
    for number in range(10):
        customer_changed(world, number, T0 + 1 + number // 4)
    await poll_account(world.deps, CONNECTION)  # reads four: a sweep begins
    state = world.states.states[CONNECTION]
    assert state.sweep is not None
    began = state.sweep.began_at
    assert (state.cursor_s, state.synced_through, state.status) == (T0, None, SyncStatus.CATCHING_UP)
    # A change made meanwhile is newer than the sweep reads: the poll after the sweep applies it.
    customer_changed(world, 10, T0 + 9)

    outcomes = [await poll_account(world.deps, CONNECTION) for _ in range(2)]

    assert outcomes == ["polled_partly", "polled"]
    assert world.processor.event_reads[1:] == ["evt_6", "evt_2"]
    for number in range(10):
        assert (
            world.records.get("customers", f"cus_{number}").email
            == f"{number}@{T0 + 1 + number // 4}.example"
        )
    assert world.records.get("customers", "cus_10") is None
    assert world.processor.reads == 10  # each object once
    state = world.states.states[CONNECTION]
    # The cursor moves to the newest second the sweep began with; everything before it is applied.
    assert (state.cursor_s, list(state.applied_ids), state.sweep) == (T0 + 3, ["evt_9", "evt_8"], None)
    assert (state.synced_through, state.status) == (began, SyncStatus.LIVE)

    assert await poll_account(world.deps, CONNECTION) == "polled"
    assert world.records.get("customers", "cus_10").email == f"10@{T0 + 9}.example"
    assert world.processor.reads == 11
    assert world.states.states[CONNECTION].cursor_s == T0 + 9


def price(price_id: str, product: str, resource: str = "prices") -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": price_id,
        "object": resource[:-1],
        "created": T0,
        "currency": "usd",
        "product": product,
        "nickname": f"nick {price_id}",
        "active": True,
    }
    if resource == "plans":
        return {**raw, "amount": 1000, "interval": "month", "interval_count": 1}
    return {**raw, "unit_amount": 1000, "type": "recurring", "recurring": {"interval": "month"}}


def stored_names(world: World) -> dict[str, str | None]:
    return {
        record.object_id: getattr(record, "name", None)
        for (collection, _), (record, _) in world.records.documents.items()
        if collection == "prices"
    }


async def test_a_renamed_product_renames_its_prices_and_plans(world: World) -> None:
    world.processor.products = {
        "prod_1": {"id": "prod_1", "object": "product", "name": "Gold"},
        "prod_2": {"id": "prod_2", "object": "product", "name": "Silver"},
    }
    prices = [
        ("prices", "price_1", "prod_1"),
        ("prices", "price_2", "prod_1"),
        ("prices", "price_3", "prod_1"),
    ]
    prices += [("plans", "plan_1", "prod_1"), ("prices", "price_9", "prod_2")]
    for resource, price_id, product in prices:
        world.processor.objects[(resource, price_id)] = price(price_id, product, resource)
    for product in ("prod_1", "prod_2"):
        world.processor.events.append(
            ProcessorChange(f"evt_{product}", "product.created", T0, "product", product)
        )
    assert await poll_account(world.deps, CONNECTION) == "polled"
    assert stored_names(world) == {
        "price_1": "Gold",
        "price_2": "Gold",
        "price_3": "Gold",
        "plan_1": "Gold",
        "price_9": "Silver",
    }
    published = len(world.publisher.records)

    world.processor.products["prod_1"]["name"] = "Platinum"
    world.processor.events.append(ProcessorChange("evt_r", "product.updated", T0 + 1, "product", "prod_1"))
    assert await poll_account(world.deps, CONNECTION) == "polled"

    renamed = {"price_1": "Platinum", "price_2": "Platinum", "price_3": "Platinum", "plan_1": "Platinum"}
    assert stored_names(world) == {**renamed, "price_9": "Silver"}
    assert {r.object_id: getattr(r, "name", None) for r in world.publisher.records[published:]} == renamed

    # Deleted: Stripe keeps its prices, which expand to no product any more (named by nickname).
    del world.processor.products["prod_1"]
    deleted = ProcessorChange("evt_d", "product.deleted", T0 + 2, "product", "prod_1")
    assert await apply_webhook_event(world.deps, webhook(deleted)) == "applied"

    names = stored_names(world)
    assert (names["price_1"], names["plan_1"], names["price_9"]) == ("nick price_1", "nick plan_1", "Silver")
    assert world.publisher.tombstones == []


async def test_a_deauthorization_in_the_event_list_is_reported_and_ends_the_sync(world: World) -> None:
    world.processor.events.append(
        ProcessorChange("evt_deauth", STRIPE_DEAUTHORIZED, T0 + 3, "application", "ca_platform")
    )

    assert await poll_account(world.deps, CONNECTION) == "credentials_lost"

    [report] = world.publisher.reports
    assert (report.reason, report.processor_event_id) == ("deauthorized", "evt_deauth")
    state = world.states.states[CONNECTION]
    assert state.status == SyncStatus.STOPPED
    assert "evt_deauth" in state.applied_ids  # a sync resumed after a reconnect skips it
    assert (
        deauthorization_in(
            Processor.STRIPE, world.processor.events, cursor_s=T0, applied_ids=state.applied_ids
        )
        is None
    )


def test_a_deauthorization_from_before_a_reconnect_is_about_the_old_credentials() -> None:
    events = [ProcessorChange("evt_deauth", STRIPE_DEAUTHORIZED, T0 + 3, "application", "ca_platform")]

    before = deauthorization_in(
        Processor.STRIPE,
        events,
        cursor_s=T0,
        applied_ids=(),
        connected_since=datetime.fromtimestamp(T0 + 9, UTC),
    )
    after = deauthorization_in(
        Processor.STRIPE, events, cursor_s=T0, applied_ids=(), connected_since=datetime.fromtimestamp(T0, UTC)
    )

    assert before is None
    assert after is not None
    assert deauthorization_in(Processor.CHARGEBEE, events, cursor_s=T0, applied_ids=()) is None


async def test_a_late_connection_lost_does_not_stop_a_reconnected_sync(world: World) -> None:
    assert not await stop_after_loss(world.deps, CONNECTION, "deauthorized")  # connected (again)

    assert world.states.states[CONNECTION].status != SyncStatus.STOPPED


async def test_a_connection_that_is_not_connected_any_more_is_not_polled(world: World) -> None:
    world.processor.change("customers", customer("a@x.example"), "customer.created", T0 + 1)
    world.readers.status = ConnectionStatus.NEEDS_RECONNECT

    assert await poll_account(world.deps, CONNECTION) == "stopped"

    assert world.processor.reads == 0
    assert world.states.states[CONNECTION].status == SyncStatus.STOPPED
    assert world.publisher.reports == []  # the connector already knows
    assert CONNECTION in world.readers.forgotten


async def test_a_loss_of_credentials_stops_the_sync_at_once(world: World) -> None:
    world.readers.status = ConnectionStatus.NEEDS_RECONNECT
    assert await stop_after_loss(world.deps, CONNECTION, "deauthorized")

    assert world.states.states[CONNECTION].status == SyncStatus.STOPPED
    assert await poll_account(world.deps, CONNECTION) == "skipped"
    assert CONNECTION in world.readers.forgotten


async def test_a_disconnection_stops_the_sync(world: World) -> None:
    world.readers.connected = False
    assert await poll_account(world.deps, CONNECTION) == "stopped"
    assert world.states.states[CONNECTION].status == SyncStatus.STOPPED
    assert world.publisher.reports == []


async def test_a_cursor_beyond_the_event_history_asks_for_a_full_import(world: World) -> None:
    state = world.states.states[CONNECTION]
    world.states.states[CONNECTION] = replace(state, cursor_s=T0 - 31 * 86_400, contact_email="o@x.example")

    assert await poll_account(world.deps, CONNECTION) == "full_import"
    assert await poll_account(world.deps, CONNECTION) == "skipped"

    [command] = world.imports
    assert (command.connection_id, command.account_id) == (CONNECTION, ACCOUNT)


async def test_a_failed_full_import_is_started_again_once_it_failed_long_enough_ago(world: World) -> None:
    state = world.states.states[CONNECTION]
    world.states.states[CONNECTION] = replace(state, cursor_s=T0 - 31 * 86_400)
    assert await poll_account(world.deps, CONNECTION) == "full_import"
    [first] = world.imports
    jobs: dict[str, ImportJob] = {}

    async def import_of(import_id: str) -> ImportJob | None:
        return jobs.get(import_id)

    world.deps = replace(world.deps, import_of=import_of)
    failed_at = world.deps.clock()
    jobs[first.import_id] = replace(
        first.queued_job(failed_at), status=ImportStatus.FAILED, finished_at=failed_at
    )
    # Just failed: left alone a while (whatever made it fail gets time to pass).
    assert await poll_account(world.deps, CONNECTION) == "skipped"

    clock = world.deps.clock
    assert isinstance(clock, Clock)
    clock.now += RESYNC_RETRY_AFTER
    assert await poll_account(world.deps, CONNECTION) == "full_import_again"
    assert await poll_account(world.deps, CONNECTION) == "skipped"  # the new one runs

    first_again, second = world.imports
    assert first_again == first
    assert second.import_id != first.import_id
    assert (second.connection_id, second.account_id) == (CONNECTION, ACCOUNT)
    assert world.states.states[CONNECTION].resync_import_id == second.import_id


async def test_due_syncs_are_ticked_once_per_interval(world: World) -> None:
    assert await emit_due_ticks(world.deps) == 1
    assert await emit_due_ticks(world.deps) == 0
    assert world.publisher.ticks == [CONNECTION]


async def test_the_lag_is_how_far_behind_the_running_sync_furthest_behind_is(world: World) -> None:
    await poll_account(world.deps, CONNECTION)
    polled_at = world.states.states[CONNECTION].synced_through
    assert polled_at is not None

    lag = await measure_lag(world.deps)

    assert 0 < lag < 1  # the fake clock moves 5 ms a read
    await world.states.stop(CONNECTION, "disconnected", polled_at)
    assert await measure_lag(world.deps) == 0


def connected(status: ConnectionStatus = ConnectionStatus.CONNECTED) -> StoredConnection:
    return StoredConnection.model_validate(
        {
            "_id": CONNECTION,
            "account_id": ACCOUNT,
            "processor": "stripe",
            "status": status.value,
            "processor_account_id": STRIPE_ACCOUNT,
            "contact_email": "owner@acme.example",
            "created_at": datetime.fromtimestamp(T0, UTC),
        }
    )


def reconnected(import_id: str | None = None) -> ProcessorReconnected:
    return ProcessorReconnected(
        account_id=ACCOUNT,
        connection_id=CONNECTION,
        processor=Processor.STRIPE,
        mode=Mode.TEST,
        processor_account_id=STRIPE_ACCOUNT,
        import_id=import_id,
    )


async def test_a_reconnect_resumes_sync_from_where_it_stopped(world: World) -> None:
    world.processor.change("customers", customer("a@x.example"), "customer.created", T0 + 1)
    await poll_account(world.deps, CONNECTION)
    world.processor.lost = True
    assert await poll_account(world.deps, CONNECTION) == "credentials_lost"
    # Changed at the processor while the connection needed reconnecting.
    world.processor.change("customers", customer("while-lost@x.example"), "customer.updated", T0 + 3)
    world.processor.lost = False
    forgotten: list[str] = []

    async def connection_of(connection_id: str) -> StoredConnection:
        return connected()

    outcome = await resume_after_reconnect(
        world.deps, connection_of, reconnected(), forget_sources=forgotten.append
    )

    assert outcome == "resumed"
    assert forgotten == [CONNECTION]
    assert world.readers.forgotten == [CONNECTION, CONNECTION]  # at the loss, and at the reconnect
    assert world.states.states[CONNECTION].cursor_s == T0 + 1
    assert await poll_account(world.deps, CONNECTION) == "polled"
    assert world.records.get("customers", "cus_1").email == "while-lost@x.example"
    assert world.imports == []


async def test_a_reconnect_that_names_an_import_starts_it_instead(world: World) -> None:
    await world.states.stop(CONNECTION, "key_rejected", datetime.now(UTC))

    async def connection_of(connection_id: str) -> StoredConnection:
        return connected()

    for _ in range(2):  # redelivered: the same import, started once by its id
        outcome = await resume_after_reconnect(
            world.deps, connection_of, reconnected("imp_again"), forget_sources=lambda _: None
        )
        assert outcome == "full_import"

    assert {command.import_id for command in world.imports} == {"imp_again"}
    assert world.imports[0].contact_email == "owner@acme.example"
    assert world.states.states[CONNECTION].status == SyncStatus.STOPPED


async def test_a_reconnect_read_after_the_connection_was_lost_again_does_nothing(world: World) -> None:
    await world.states.stop(CONNECTION, "key_rejected", datetime.now(UTC))

    async def connection_of(connection_id: str) -> StoredConnection:
        return connected(ConnectionStatus.NEEDS_RECONNECT)

    outcome = await resume_after_reconnect(
        world.deps, connection_of, reconnected(), forget_sources=lambda _: None
    )

    assert outcome == "not_connected"
    assert world.states.states[CONNECTION].status == SyncStatus.STOPPED


def received(event: ProcessorChange, at: datetime) -> ProcessorEventReceived:
    return webhook(event).model_copy(update={"received_at": at})


def now_of(world: World) -> datetime:
    clock = world.deps.clock
    assert isinstance(clock, Clock)
    return clock.now


async def test_events_received_before_a_finished_re_read_need_none_of_their_own(world: World) -> None:
    first = world.processor.change("customers", customer("a@x.example"), "customer.created", T0 + 1)
    second = world.processor.change("customers", customer("b@x.example"), "customer.updated", T0 + 1)
    # Both were received well before the first apply re-reads the customer.
    early = now_of(world) - timedelta(seconds=10)

    assert await apply_webhook_event(world.deps, received(first, early)) == "applied"
    assert await apply_webhook_event(world.deps, received(second, early)) == "covered"

    assert world.processor.reads == 1
    assert world.records.get("customers", "cus_1").email == "b@x.example"
    assert set(world.states.states[CONNECTION].applied_ids) == {first.event_id, second.event_id}
    # A change received after that read is re-read.
    third = world.processor.change("customers", customer("c@x.example"), "customer.updated", T0 + 2)
    assert await apply_webhook_event(world.deps, received(third, now_of(world))) == "applied"
    assert world.processor.reads == 2
    assert world.records.get("customers", "cus_1").email == "c@x.example"


async def test_a_re_read_sent_within_the_clock_margin_of_an_event_does_not_cover_it(world: World) -> None:
    first = world.processor.change("customers", customer("a@x.example"), "customer.created", T0 + 1)
    await apply_webhook_event(world.deps, received(first, now_of(world)))
    # Received (by the connector's clock) just before the read: the clocks may disagree that much.
    second = world.processor.change("customers", customer("b@x.example"), "customer.updated", T0 + 1)
    just_before = now_of(world) - timedelta(milliseconds=100)

    assert await apply_webhook_event(world.deps, received(second, just_before)) == "applied"
    assert world.records.get("customers", "cus_1").email == "b@x.example"


class GatedProcessor(FakeProcessor):
    """Each re-read waits until the test opens the gate; says which reads were in flight together."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.in_flight: list[str] = []
        self.most_in_flight = 0
        self.order: list[str] = []

    async def retrieve(self, resource: str, object_id: str) -> RawObject | None:
        self.in_flight.append(object_id)
        self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
        self.order.append(object_id)
        await self.gate.wait()
        self.in_flight.remove(object_id)
        return await super().retrieve(resource, object_id)


async def test_distinct_objects_are_re_read_at_once_and_one_object_in_turn(world: World) -> None:
    processor = GatedProcessor()
    world.readers.processor = processor
    for number in (1, 2, 3):
        processor.objects[("customers", f"cus_{number}")] = {
            **customer(f"{number}@x.example"),
            "id": f"cus_{number}",
        }
    events = [
        ProcessorChange(f"evt_{index}", "customer.updated", T0 + 1, "customer", object_id)
        for index, object_id in enumerate(["cus_1", "cus_2", "cus_3", "cus_1"])
    ]
    # Each received after the re-reads before it would start: none covers another.
    late = now_of(world) + timedelta(hours=1)
    applying = [asyncio.create_task(apply_webhook_event(world.deps, received(e, late))) for e in events]
    for _ in range(20):
        await asyncio.sleep(0)

    assert sorted(processor.in_flight) == ["cus_1", "cus_2", "cus_3"]  # cus_1's second event waits
    processor.objects[("customers", "cus_1")] = {**customer("new@x.example"), "id": "cus_1"}
    processor.gate.set()
    await asyncio.gather(*applying)

    assert processor.most_in_flight == 3
    assert processor.order.count("cus_1") == 2
    assert world.records.get("customers", "cus_1").email == "new@x.example"
    assert world.records.get("customers", "cus_3").email == "3@x.example"


async def test_a_poll_re_reads_its_objects_at_once(world: World) -> None:
    processor = GatedProcessor()
    world.readers.processor = processor
    for number in (1, 2):
        processor.objects[("customers", f"cus_{number}")] = {
            **customer(f"{number}@x.example"),
            "id": f"cus_{number}",
        }
        processor.events.append(
            ProcessorChange(f"evt_{number}", "customer.updated", T0 + 1, "customer", f"cus_{number}")
        )

    polling = asyncio.create_task(poll_account(world.deps, CONNECTION))
    for _ in range(20):
        await asyncio.sleep(0)
    assert sorted(processor.in_flight) == ["cus_1", "cus_2"]
    processor.gate.set()

    assert await polling == "polled"
    assert world.records.get("customers", "cus_2").email == "2@x.example"
    assert world.states.states[CONNECTION].cursor_s == T0 + 1


def customer_numbered(number: int, name: str, created: int = T0) -> dict[str, Any]:
    return {"id": f"cus_{number:04d}", "object": "customer", "created": created, "email": "", "name": name}


async def _account_of(world: World, customers: int) -> None:
    """An imported account: ``customers`` customers at the processor and in the store."""
    for number in range(customers):
        world.processor.objects[("customers", f"cus_{number:04d}")] = customer_numbered(number, "old")
    await list_resource(world.deps, await _state(world), world.processor, "customers")
    world.processor.pages = 0
    _later(world)


def _later(world: World) -> None:
    clock = world.deps.clock
    assert isinstance(clock, Clock)
    clock.now += timedelta(seconds=10)


async def _state(world: World) -> SyncState:
    found = await world.states.get(CONNECTION)
    assert found is not None
    return found


def _received(world: World, number: int, event_type: str = "customer.updated") -> ProcessorEventReceived:
    received_at = world.deps.clock() - timedelta(seconds=2)  # beyond the clocks' margin
    event = ProcessorChange(f"evt_{number}", event_type, T0 + 5, "customer", f"cus_{number:04d}")
    return webhook(event).model_copy(update={"received_at": received_at})


async def test_a_burst_touching_many_customers_is_read_by_listing_them(world: World) -> None:
    await _account_of(world, 250)
    for number in range(250):
        world.processor.objects[("customers", f"cus_{number:04d}")] = customer_numbered(number, "new")
    del world.processor.objects[("customers", "cus_0007")]  # deleted at the processor
    events = [_received(world, number) for number in range(250)]
    world.processor.list_chains, world.records.look_ups = 20, 0

    outcomes = await asyncio.gather(*(apply_webhook_event(world.deps, event) for event in events))

    # 250 customers are 3 pages: once 16 of them wait, the rest wait for one listing.
    assert world.processor.pages == 3
    assert world.processor.reads <= 16  # those before the listing, and the deleted one
    assert outcomes.count("listed") > 230
    # One look-up of the stored records said both that a listing is worth it and where to cut it.
    assert world.records.look_ups == 1
    for number in range(250):
        stored = world.records.get("customers", f"cus_{number:04d}")
        if number == 7:  # absent from the listing: re-read alone, and gone
            assert stored is None
        else:
            assert stored.name == "new"
    assert world.publisher.tombstones == [("billing.customers.v1", f"{ACCOUNT}:stripe:cus_0007")]


async def test_a_few_changed_objects_are_each_re_read(world: World) -> None:
    await _account_of(world, 250)
    events = [_received(world, number) for number in range(5)]

    await asyncio.gather(*(apply_webhook_event(world.deps, event) for event in events))

    assert (world.processor.pages, world.processor.reads) == (0, 5)


async def test_a_listing_never_stores_an_object_older_than_what_is_stored(world: World) -> None:
    await _account_of(world, 3)
    newer = world.deps.clock() + timedelta(hours=1)
    stored = world.records.documents[("customers", f"{ACCOUNT}:stripe:cus_0001")]
    world.records.documents[("customers", f"{ACCOUNT}:stripe:cus_0001")] = (
        stored[0],
        int(newer.timestamp() * 1000),
    )
    world.processor.objects[("customers", "cus_0001")] = customer_numbered(1, "listed")
    world.processor.objects[("customers", "cus_0002")] = customer_numbered(2, "listed")

    await list_resource(world.deps, await _state(world), world.processor, "customers")

    assert world.records.get("customers", "cus_0001").name == "old"
    assert world.records.get("customers", "cus_0002").name == "listed"


async def test_a_change_received_after_a_listing_started_is_not_covered_by_it(world: World) -> None:
    await _account_of(world, 250)
    state = await _state(world)
    # Read by the listing before the change below: a later change needs a later read.
    await list_resource(world.deps, state, world.processor, "customers")
    _later(world)
    world.processor.objects[("customers", "cus_0003")] = customer_numbered(3, "after")

    await apply_webhook_event(world.deps, _received(world, 3))

    assert world.records.get("customers", "cus_0003").name == "after"
    assert world.processor.reads == 1


async def test_work_taken_in_after_a_listing_started_waits_for_the_next_one() -> None:
    work, clock, gate = SyncWork(), Clock(), asyncio.Event()
    started: list[datetime] = []

    async def run() -> None:
        started.append(clock.now)
        await gate.wait()

    resource = (CONNECTION, "customers")
    early = asyncio.create_task(work.listed_since(resource, clock(), clock, run))
    joined = asyncio.create_task(work.listed_since(resource, clock.now - timedelta(seconds=1), clock, run))
    late = asyncio.create_task(work.listed_since(resource, clock() + timedelta(seconds=1), clock, run))
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(started) == 1  # one listing at a time: the earlier work joins the running one
    clock.now += timedelta(seconds=2)
    gate.set()

    assert list(await asyncio.gather(early, joined, late)) == [True, True, True]
    assert len(started) == 2  # the late work's change may be after the first listing read: a second one


async def test_a_listing_reads_windows_of_creation_time_at_once(world: World) -> None:
    # 250 stored customers created over time, three sharing each second; one created since.
    for number in range(250):
        world.processor.objects[("customers", f"cus_{number:04d}")] = customer_numbered(
            number, "old", T0 + number // 3
        )
    await list_resource(world.deps, await _state(world), world.processor, "customers")
    for number in range(251):
        world.processor.objects[("customers", f"cus_{number:04d}")] = customer_numbered(
            number, "new", T0 + number // 3
        )
    world.processor.pages, world.processor.windows, world.processor.list_chains = 0, [], 20
    served: list[str] = []
    list_page = world.processor.list_page

    async def counted(resource: str, window: Window, cursor: str | None) -> FetchedPage:
        page = await list_page(resource, window, cursor)
        served.extend(str(raw["id"]) for raw in page.objects)
        return page

    world.processor.list_page = counted  # type: ignore[method-assign]

    pages = await list_resource(world.deps, await _state(world), world.processor, "customers")

    # As many windows as the 250 stored customers' pages, cut where they fall: each read at once.
    assert len(world.processor.windows) == pages == 3
    assert world.processor.windows[0].created_gte is None
    assert world.processor.windows[-1].created_lt is None
    assert sorted(served) == [f"cus_{number:04d}" for number in range(251)]  # each once
    for number in range(251):
        assert world.records.get("customers", f"cus_{number:04d}").name == "new"


async def test_a_listing_writes_and_publishes_only_the_objects_that_changed(world: World) -> None:
    await _account_of(world, 250)
    world.processor.objects[("customers", "cus_0003")] = customer_numbered(3, "new")
    writes, published = world.records.writes, len(world.publisher.records)
    unchanged = ("customers", f"{ACCOUNT}:stripe:cus_0100")
    version_before = world.records.documents[unchanged][1]

    await list_resource(world.deps, await _state(world), world.processor, "customers")

    assert world.records.writes - writes == 1
    assert [record.object_id for record in world.publisher.records[published:]] == ["cus_0003"]
    # The others are equal: only their version moved on to the listing's, so an older read of one
    # of them that lands later is still refused.
    assert world.records.documents[unchanged][1] > version_before


async def test_a_listing_writes_what_another_process_stored_even_if_equal(world: World) -> None:
    await _account_of(world, 3)
    # Stored by another process since (it may have died before publishing it): this one only
    # skips what it published itself, at the version it published.
    key = ("customers", f"{ACCOUNT}:stripe:cus_0001")
    world.records.documents[key] = (world.records.documents[key][0], world.records.documents[key][1] + 1)
    published = len(world.publisher.records)

    await list_resource(world.deps, await _state(world), world.processor, "customers")

    assert "cus_0001" in [record.object_id for record in world.publisher.records[published:]]
    assert world.records.get("customers", "cus_0001").name == "old"
