"""Changes made at the processor while the first import runs are not lost (SPEC "Keeping data
fresh"), on the real broker and store against the fake processors over HTTP: objects the import has
already stored are changed, deleted and cancelled at the fake, and a customer created, while the
import still runs; once it completes, the sync's first poll (whose cursor starts before the import
began) leaves the store equal to what the processor holds, record for record. No webhook reaches the
importer and no later poll runs, so only that first poll can have applied the changes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from contracts.events import Processor
from devstack.settings import StackSecrets
from importer_integration_kit import (
    LATENCY_MS,
    Connection,
    FakeProcessors,
    Importers,
    connect,
    trigger,
    wait_until,
)
from pymongo.database import Database
from sync_changes_kit import (
    CATALOG_2,
    WEBHOOKS_ONLY,
    Processors,
    connect_site,
    differences,
    everything_normalised,
    import_status,
    stored,
    until_live,
)

pytestmark = [pytest.mark.infra, pytest.mark.asyncio(loop_scope="session")]

#: Slow pages, one chain per resource: the import lasts while the changes are made (the invoices
#: alone are some 30 pages, one after the other).
SLOW_IMPORT = {
    "STRIPE_TEST_CHAINS_PER_RESOURCE": "1",
    "STRIPE_TEST_IMPORT_CHAINS": "1",
    "CHARGEBEE_CHAINS_PER_RESOURCE": "1",
}
SLOW_PAGE_S = 0.3


@pytest.fixture
def restored(fake_processors: FakeProcessors) -> Iterator[None]:
    try:
        yield
    finally:
        for processor in (Processor.STRIPE, Processor.CHARGEBEE):
            fake_processors.admin(processor).reset()  # the data, and the usual latency, back


def imported_customers(database: Database[dict[str, Any]], connection: Connection) -> list[str] | None:
    """Three customers the import has stored, once it has."""
    owner = {"account_id": connection.account_id}
    found = [str(d["object_id"]) for d in database.customers.find(owner, {"object_id": 1}, limit=3)]
    return found if len(found) == 3 else None


@pytest.mark.parametrize("processor", [Processor.STRIPE, Processor.CHARGEBEE], ids=["stripe", "chargebee"])
async def test_changes_made_while_the_first_import_runs_are_not_lost(
    processor: Processor,
    importers: Importers,
    fake_processors: FakeProcessors,
    mongo_db: Database[dict[str, Any]],
    producer: AIOKafkaProducer,
    stack_secrets: StackSecrets,
    restored: None,
) -> None:
    database = mongo_db
    admin = fake_processors.admin(processor)
    admin.update_settings(latency_s=SLOW_PAGE_S)
    importers.start(1, **SLOW_IMPORT, **WEBHOOKS_ONLY)
    if processor is Processor.STRIPE:
        connection = connect(database, stack_secrets, processor)
    else:
        connection = connect_site(database, stack_secrets, CATALOG_2)
    import_id = await trigger(producer, connection)

    changed, doomed, _ = await wait_until(lambda: imported_customers(database, connection), timeout_s=120)
    live = await wait_until(
        lambda: database.subscriptions.find_one(
            {
                "account_id": connection.account_id,
                "status": "active",
                "customer_id": {"$nin": [changed, doomed]},
            }
        ),
        timeout_s=120,
    )
    admin.update_object("customers", changed, {"email": "during-import@sync.example"})
    admin.delete_object("customers", doomed)
    created = str(
        admin.create_object("customers", {"email": "created-during-import@sync.example"})["object"]["id"]
    )
    admin.cancel_subscription(live["object_id"])
    # Every change landed while the import ran, after it had stored those objects.
    assert import_status(database, import_id) == "running"
    assert stored(database, "customers", connection, changed)["email"] != "during-import@sync.example"  # type: ignore[index]
    admin.update_settings(latency_s=LATENCY_MS / 1000)

    await until_live(database, connection, import_id)

    expected = everything_normalised(Processors(fake_processors), processor, connection.account_id)
    assert differences(database, connection, expected) == []
    assert stored(database, "customers", connection, changed)["email"] == "during-import@sync.example"  # type: ignore[index]
    assert stored(database, "customers", connection, doomed) is None
    assert stored(database, "customers", connection, created) is not None
    assert stored(database, "cancellations", connection, live["object_id"]) is not None
