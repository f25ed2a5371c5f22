"""The onboarding page's confirmation of going on without a processor, and what that leaves out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts.events import SKIP_DISABLED_FEATURES, Feature
from fastapi import APIRouter, Request, Response

from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.entrypoints.http_dependencies import dependencies_of
from connector.entrypoints.onboarding_forms import FormProblem, form_text
from connector.entrypoints.onboarding_rendering import (
    CSRF_FIELD,
    Session,
    page_context,
    redirect,
    render,
    status_of,
)
from connector.entrypoints.onboarding_session import ONBOARDING_PATH, OnboardingSession
from connector.entrypoints.onboarding_wording import CSRF_MESSAGE, FEATURE_DESCRIPTIONS
from connector.service.onboarding_status import OnboardingStage, OnboardingStatus
from connector.service.skip_connection import SkipRequest, skip_connection

router = APIRouter(prefix=ONBOARDING_PATH, include_in_schema=False)


def _skip_context(session: OnboardingSession, current: OnboardingStatus) -> dict[str, Any]:
    return {"unavailable": _unavailable(SKIP_DISABLED_FEATURES), **page_context(session, current)}


def _unavailable(features: Sequence[Feature]) -> list[tuple[str, str]]:
    return [FEATURE_DESCRIPTIONS[feature] for feature in features]


@router.get("/skip")
async def skip_confirmation(request: Request, session: Session) -> Response:
    current = await status_of(request, session)
    if current.stage is not OnboardingStage.CHOOSE:
        return redirect(ONBOARDING_PATH)
    return render(request, "skip.html", **_skip_context(session, current))


@router.post("/skip")
async def skip_submit(request: Request, session: Session) -> Response:
    form = await request.form()
    if not session.accepts(form_text(form, CSRF_FIELD)):
        request.state.outcome = "csrf"
        current = await status_of(request, session)
        return render(
            request,
            "skip.html",
            status_code=403,
            problem=FormProblem(CSRF_MESSAGE, code="csrf", status_code=403),
            **_skip_context(session, current),
        )
    try:
        await skip_connection(
            dependencies_of(request),
            SkipRequest(account_id=session.account_id, contact_email=session.contact_email),
        )
    except ConnectionRefused as refusal:
        if refusal.code is not RefusalCode.ALREADY_CONNECTED:
            raise
    request.state.outcome = "skipped"
    return redirect(ONBOARDING_PATH)
