"""A notifier in this process and import events with fresh ids, for the integration tests."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.events import Event, ImportCompleted, ImportFailed, Processor, ResourceCount
from fastapi import FastAPI
from notifier.bootstrap import build
from notifier.service.dependencies import Dependencies
from notifier.settings import NotifierSettings

PublishImportEvent = Callable[[Event], Awaitable[None]]
APP_URL = "https://app.billing-import.test/welcome"


@contextlib.asynccontextmanager
async def running_notifier(settings: NotifierSettings) -> AsyncIterator[FastAPI]:
    """One notifier in this process (group ``notifier-imports`` on ``imports.v1``) until the block ends."""
    app = build(settings)
    async with app.router.lifespan_context(app):
        yield app


def notifier_of(app: FastAPI) -> Dependencies:
    deps: Dependencies = app.state.dependencies
    return deps


@dataclass(frozen=True)
class AnImport:
    """Ids no other test uses, so what the shared broker and mail catcher hold can be told apart."""

    account_id: str
    import_id: str
    contact_email: str

    @classmethod
    def new(cls) -> AnImport:
        tag = uuid.uuid4().hex[:10]
        return cls(f"acct-{tag}", f"imp-{tag}", f"owner-{tag}@example.com")

    def completed(self, **overrides: Any) -> ImportCompleted:
        finished = datetime.now(UTC)
        fields: dict[str, Any] = {
            "account_id": self.account_id,
            "import_id": self.import_id,
            "processor": Processor.STRIPE,
            "resources": {
                "customers": ResourceCount(imported=1204),
                "subscriptions": ResourceCount(imported=1530),
                "invoices": ResourceCount(imported=18230),
            },
            "past_cancellations": 312,
            "started_at": finished - timedelta(minutes=6),
            "finished_at": finished,
            "contact_email": self.contact_email,
        }
        fields.update(overrides)
        return ImportCompleted(**fields)

    def failed(self, code: str = "key_rejected") -> ImportFailed:
        return ImportFailed(
            account_id=self.account_id,
            import_id=self.import_id,
            code=code,
            message="Stripe answered 401 to every request",
            contact_email=self.contact_email,
            processor=Processor.STRIPE,
        )

    def sibling(self) -> AnImport:
        """Another import of the same account: its events share the partition, so they come after."""
        other = AnImport.new()
        return AnImport(self.account_id, other.import_id, other.contact_email)
