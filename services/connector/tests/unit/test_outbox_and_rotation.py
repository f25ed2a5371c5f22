"""Events survive a broker outage; credentials move to the newest key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.service.connect_chargebee import ChargebeeCredentialsSubmission, connect_chargebee
from connector.service.outbox import relay_unpublished
from connector.service.rotate_credentials import rotate_credentials
from connector_fakes import CHARGEBEE_KEY, World, new_fernet_key
from contracts.connections import CredentialCipher
from contracts.events import ProcessorConnected
from pydantic import SecretStr


def submission(account_id: str) -> ChargebeeCredentialsSubmission:
    return ChargebeeCredentialsSubmission(
        account_id=account_id, site="acme-test", api_key=SecretStr(CHARGEBEE_KEY), contact_email="o@a.example"
    )


async def test_a_broker_outage_delays_the_event_but_never_loses_it(world: World) -> None:
    world.publisher.failing = True
    connected = await connect_chargebee(world.deps, submission("acc_1"))
    assert world.publisher.published == []
    assert len(world.connections.documents[connected.connection_id].outbox) == 1

    world.publisher.failing = False
    world.clock.now = datetime.now(UTC) + timedelta(minutes=1)
    assert await relay_unpublished(world.deps, older_than=timedelta(seconds=5)) == 1
    assert await relay_unpublished(world.deps, older_than=timedelta(seconds=5)) == 0

    [event] = world.publisher.events(ProcessorConnected)
    assert isinstance(event, ProcessorConnected)
    assert event.import_id == connected.import_id
    assert world.connections.documents[connected.connection_id].outbox == []


async def test_fresh_events_are_left_to_the_request_that_wrote_them(world: World) -> None:
    world.publisher.failing = True
    await connect_chargebee(world.deps, submission("acc_1"))
    world.publisher.failing = False
    world.clock.now = datetime.now(UTC)

    assert await relay_unpublished(world.deps, older_than=timedelta(minutes=5)) == 0


async def test_rotation_moves_every_credential_to_the_newest_key(world: World) -> None:
    old_key = new_fernet_key()
    old_cipher = CredentialCipher([old_key])
    world_cipher_key = world.cipher  # the cipher the connections were written with
    first = await connect_chargebee(world.deps, submission("acc_1"))
    second = await connect_chargebee(world.deps, submission("acc_2"))
    for connection_id in (first.connection_id, second.connection_id):
        document = world.connections.documents[connection_id]
        plain = world_cipher_key.decrypt(document.connection.credentials_ciphertext or "")
        document.connection = document.connection.model_copy(
            update={"credentials_ciphertext": old_cipher.encrypt(plain)}
        )
    newest = new_fernet_key()

    report = await rotate_credentials(
        world.connections, CredentialCipher([newest, old_key]), CredentialCipher([newest])
    )
    again = await rotate_credentials(
        world.connections, CredentialCipher([newest, old_key]), CredentialCipher([newest])
    )

    assert (report.rotated, report.unreadable, report.complete) == (2, [], True)
    assert (again.rotated, again.already_current) == (0, 2)
    only_newest = CredentialCipher([newest])
    for connection_id in (first.connection_id, second.connection_id):
        ciphertext = world.connections.documents[connection_id].connection.credentials_ciphertext or ""
        assert only_newest.decrypt(ciphertext).api_key.get_secret_value() == CHARGEBEE_KEY


async def test_rotation_reports_what_no_key_opens(world: World) -> None:
    connected = await connect_chargebee(world.deps, submission("acc_1"))

    stranger = CredentialCipher([new_fernet_key()])
    report = await rotate_credentials(world.connections, stranger, stranger)

    assert (report.rotated, report.unreadable, report.complete) == (0, [connected.connection_id], False)
