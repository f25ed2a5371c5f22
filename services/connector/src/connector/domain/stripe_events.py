"""What a Stripe Connect event announces: which account, which object, when (not the object itself)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from contracts.events import Processor
from contracts.sync import ProcessorEventReceived


class MalformedStripeEvent(ValueError):
    """A verified body that is not a Stripe event."""


def stripe_event(body: Mapping[str, Any]) -> ProcessorEventReceived | None:
    """The change a Connect webhook announces; ``None`` for an event of the platform's own account."""
    event_id, event_type, created = body.get("id"), body.get("type"), body.get("created")
    if not isinstance(event_id, str) or not isinstance(event_type, str) or not isinstance(created, int):
        raise MalformedStripeEvent("a Stripe event has an id, a type and a created time")
    account = body.get("account")
    if not isinstance(account, str) or not account:
        return None
    data = body.get("data")
    changed = data.get("object") if isinstance(data, Mapping) else None
    changed = changed if isinstance(changed, Mapping) else {}
    object_id, object_type, livemode = changed.get("id"), changed.get("object"), body.get("livemode")
    return ProcessorEventReceived(
        processor=Processor.STRIPE,
        processor_account_id=account,
        processor_event_id=event_id,
        event_type=event_type,
        created=_moment(created),
        livemode=livemode if isinstance(livemode, bool) else None,
        object_type=object_type if isinstance(object_type, str) else None,
        object_id=object_id if isinstance(object_id, str) else None,
    )


def _moment(seconds: int) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as error:
        raise MalformedStripeEvent("the event's time is out of range") from error
