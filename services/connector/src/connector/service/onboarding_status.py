"""Use case: where the account stands in onboarding, for the onboarding page (choose, import, done)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from contracts.connections import ConnectionStatus
from contracts.events import Feature, Mode, Processor

from connector.domain.connection import ImportStatus
from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.service.dependencies import Dependencies
from connector.service.read_connection import read_connection


class OnboardingStage(StrEnum):
    #: Nothing connected: never, disconnected, or a Stripe key still waiting for authorization.
    CHOOSE = "choose"
    SKIPPED = "skipped"
    #: The processor stopped accepting the stored credentials: the history is kept, the same
    #: processor account is to be reconnected.
    RECONNECT = "reconnect"
    IMPORTING = "importing"
    COMPLETE = "complete"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        """Whether the page has nothing more to wait for."""
        return self is not OnboardingStage.IMPORTING


@dataclass(frozen=True, slots=True)
class OnboardingStatus:
    stage: OnboardingStage
    processor: Processor | None = None
    mode: Mode | None = None
    #: A Stripe key was accepted but the person has not authorized on Stripe (or came back without).
    awaiting_stripe: bool = False
    unavailable_features: tuple[Feature, ...] = ()
    contact_email: str | None = None
    import_id: str | None = None
    import_status: ImportStatus | None = None
    import_error_code: str | None = None
    #: Objects imported so far per resource (the importer's names).
    resources: Mapping[str, int] = field(default_factory=dict)
    past_cancellations: int | None = None
    #: Chargebee: the connection's site, which a reconnect must use again.
    site: str | None = None


_STAGE_OF_IMPORT = {
    ImportStatus.QUEUED: OnboardingStage.IMPORTING,
    ImportStatus.RUNNING: OnboardingStage.IMPORTING,
    ImportStatus.COMPLETED: OnboardingStage.COMPLETE,
    ImportStatus.FAILED: OnboardingStage.FAILED,
}


async def onboarding_status(deps: Dependencies, account_id: str) -> OnboardingStatus:
    try:
        summary = await read_connection(deps, account_id)
    except ConnectionRefused as refusal:
        if refusal.code is RefusalCode.CONNECTION_NOT_FOUND:
            return OnboardingStatus(OnboardingStage.CHOOSE)
        raise
    unavailable = tuple(feature for feature, on in summary.features.items() if not on)
    if summary.status is ConnectionStatus.SKIPPED:
        return OnboardingStatus(
            OnboardingStage.SKIPPED, unavailable_features=unavailable, contact_email=summary.contact_email
        )
    if summary.status is ConnectionStatus.NEEDS_RECONNECT:
        return OnboardingStatus(
            OnboardingStage.RECONNECT,
            processor=summary.processor,
            mode=summary.mode,
            unavailable_features=unavailable,
            contact_email=summary.contact_email,
            site=summary.site,
        )
    latest = summary.latest_import
    if summary.status is not ConnectionStatus.CONNECTED or latest is None:
        return OnboardingStatus(
            OnboardingStage.CHOOSE,
            awaiting_stripe=summary.status is ConnectionStatus.AWAITING_AUTHORIZATION,
            unavailable_features=unavailable,
        )
    counts = (
        None
        if deps.import_counts is None
        else await deps.import_counts.counts_of(account_id, latest.import_id)
    )
    return OnboardingStatus(
        _STAGE_OF_IMPORT[latest.status],
        processor=summary.processor,
        mode=summary.mode,
        contact_email=summary.contact_email,
        import_id=latest.import_id,
        import_status=latest.status,
        import_error_code=latest.error_code,
        resources={} if counts is None else counts.resources,
        past_cancellations=None if counts is None else counts.past_cancellations,
    )
