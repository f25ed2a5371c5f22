"""The emails a contact can get (an import completed or failed, a connection that lost its
credentials), what each one says, and the identities that keep each one single."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final

from notifier.domain import wording

#: Namespace of the stable ids derived from an import (the EmailSent event id): never change it,
#: or a redelivery after an upgrade would publish a second EmailSent that consumers cannot dedupe.
RECEIPT_NAMESPACE: Final = uuid.UUID("6f0f3c53-5d0e-4c59-9a55-0b8f5f9f1e2a")

# An address we are willing to put in a header: no whitespace or control characters (no header
# injection), exactly one "@", a dotted or single-label domain. Deliverability is the server's call.
_ADDRESS: Final = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f.][^@\s\x00-\x1f\x7f]*$")
_MESSAGE_ID_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._+-]")
ADDRESS_MAX_LENGTH: Final = 254


class InvalidAddress(ValueError):
    """A contact address no mail server could ever accept."""


@dataclass(frozen=True, slots=True)
class EmailAddress:
    value: str

    def __post_init__(self) -> None:
        if len(self.value) > ADDRESS_MAX_LENGTH or not _ADDRESS.match(self.value):
            raise InvalidAddress("not an email address")

    @property
    def domain(self) -> str:
        return self.value.rsplit("@", 1)[1]

    def __str__(self) -> str:
        return self.value


class EmailKind(StrEnum):
    IMPORT_COMPLETED = "import_completed"
    IMPORT_FAILED = "import_failed"
    CONNECTION_LOST = "connection_lost"


@dataclass(frozen=True, slots=True)
class EmailIdentity:
    """What makes an email the same email however often its event arrives: what it is about (an
    import id, or the ``event_id`` of a loss of credentials) and its kind."""

    reference: str
    kind: EmailKind

    @property
    def ledger_key(self) -> str:
        """The send ledger's unique key: one row, hence one send, per subject and kind."""
        return f"{self.reference}:{self.kind}"

    def message_id(self, sender_domain: str) -> str:
        """A stable ``Message-ID``: a resend after a crash is the same message to mail clients."""
        local = _MESSAGE_ID_UNSAFE.sub("_", self.reference) or "unknown"
        if self.kind is EmailKind.CONNECTION_LOST:
            return f"<connection-lost-{local}@{sender_domain}>"
        suffix = "completed" if self.kind is EmailKind.IMPORT_COMPLETED else "failed"
        return f"<import-{local}.{suffix}@{sender_domain}>"

    @property
    def receipt_event_id(self) -> uuid.UUID:
        """The ``event_id`` of this email's EmailSent, stable so a republished receipt is deduped."""
        return receipt_event_id(self.ledger_key)


def receipt_event_id(ledger_key: str) -> uuid.UUID:
    """The ``event_id`` of the EmailSent of the email with this ledger key."""
    return uuid.uuid5(RECEIPT_NAMESPACE, ledger_key)


@dataclass(frozen=True, slots=True)
class ResourceLine:
    resource: str
    imported: int

    @property
    def label(self) -> str:
        return wording.resource_label(self.resource)

    @property
    def count(self) -> str:
        return wording.format_count(self.imported)


@dataclass(frozen=True, slots=True)
class ImportCompletedNotice:
    """An import finished: tell the contact what arrived and what it now powers."""

    account_id: str
    import_id: str
    to: EmailAddress
    processor: str
    resources: Mapping[str, int]
    past_cancellations: int
    started_at: datetime
    finished_at: datetime
    kind: EmailKind = field(default=EmailKind.IMPORT_COMPLETED, init=False)

    @property
    def identity(self) -> EmailIdentity:
        return EmailIdentity(self.import_id, self.kind)

    @property
    def processor_name(self) -> str:
        return wording.processor_name(self.processor)

    @property
    def subject(self) -> str:
        return f"Your {self.processor_name} import is complete"

    @property
    def lines(self) -> tuple[ResourceLine, ...]:
        ordered = sorted(self.resources, key=wording.resource_order)
        return tuple(ResourceLine(resource, self.resources[resource]) for resource in ordered)

    @property
    def total_records(self) -> str:
        return wording.counted(sum(self.resources.values()), "record")

    @property
    def cancellations(self) -> str:
        return wording.counted(self.past_cancellations, "past cancellation")

    @property
    def duration(self) -> str:
        return wording.format_duration(self.finished_at - self.started_at)

    @property
    def powered_features(self) -> tuple[str, ...]:
        return wording.POWERED_FEATURES


@dataclass(frozen=True, slots=True)
class ImportFailedNotice:
    """An import stopped: tell the contact, in plain words, what happened and what to do."""

    account_id: str
    import_id: str
    to: EmailAddress
    code: str
    #: The importer's own wording, shown as a detail for support; never holds a secret (SPEC).
    message: str
    processor: str | None = None
    kind: EmailKind = field(default=EmailKind.IMPORT_FAILED, init=False)

    @property
    def identity(self) -> EmailIdentity:
        return EmailIdentity(self.import_id, self.kind)

    @property
    def processor_name(self) -> str:
        return wording.processor_name(self.processor)

    @property
    def source(self) -> str:
        """Where the data was coming from, as the middle of a sentence."""
        return self.processor_name if self.processor else "your payment processor"

    @property
    def subject(self) -> str:
        return f"Your {self.processor_name} import did not finish"

    @property
    def explanation(self) -> wording.FailureExplanation:
        return wording.explain_failure(self.code, self.processor)


ImportNotice = ImportCompletedNotice | ImportFailedNotice


@dataclass(frozen=True, slots=True)
class ConnectionLostNotice:
    """The processor stopped accepting the connection's credentials: tell the contact what happened,
    that the history stays, and how to reconnect."""

    account_id: str
    #: The ``event_id`` of the ``ConnectionLost``: one email per loss, however often it arrives.
    loss_id: str
    connection_id: str
    to: EmailAddress
    processor: str
    #: ``deauthorized`` (access removed at the processor) or ``credentials_rejected`` (a 401).
    reason: str
    kind: EmailKind = field(default=EmailKind.CONNECTION_LOST, init=False)
    #: Not about an import.
    import_id: None = field(default=None, init=False)

    @property
    def identity(self) -> EmailIdentity:
        return EmailIdentity(self.loss_id, self.kind)

    @property
    def processor_name(self) -> str:
        return wording.processor_name(self.processor)

    @property
    def subject(self) -> str:
        return f"Reconnect {self.processor_name}: we can no longer read your billing data"

    @property
    def explanation(self) -> wording.LossExplanation:
        return wording.explain_loss(self.reason, self.processor)


Notice = ImportNotice | ConnectionLostNotice


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """The words of one email in both forms every mail client can show."""

    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """One email ready for the wire."""

    sender: EmailAddress
    to: EmailAddress
    message_id: str
    content: RenderedEmail
