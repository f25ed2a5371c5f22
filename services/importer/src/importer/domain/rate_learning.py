"""Learning a processor account's real request limit from its answers (Chargebee: per site).

A Chargebee site's limit depends on its plan and on what support granted it (150 requests a minute
on test sites and Starter, 1,000 on Performance, 3,500 on Enterprise, more on request), and the
site's own integrations share it: the configured figure is only where the importer starts. Chargebee
counts the requests of the past 60 seconds and refuses every request (429) once the count reaches the
limit, until it falls back under it.

What the importer learns, per account (a :class:`LearnedLimit`, shared by every replica):

- **A refusal lowers the estimate to the evidence.** The requests the site accepted in the past
  window are a lower bound of its limit, and the refusal says the limit is reached: the estimate
  becomes that count (never raised by a refusal). Refusals that arrive within ``settle_s`` of the
  first are answers to requests sent before it, and change nothing.
- **After a refusal, sending resumes when the window has room at the new pace**
  (:func:`resume_delay_s`): the accepted requests leave the window when they turn 60 seconds old; a
  window filled faster than the new pace (while probing) would refuse again one request after the
  other if sending resumed at once.
- **A busy account probes upward.** While the budget is what holds requests back (most of a
  period's requests waited for their slot) and no refusal came for a while, the estimate grows every
  ``probe_every_s``: doubled (``discovery_step``) until the account's first refusal, as TCP's slow
  start does (a site allowing 10 times the configured limit is found within 40 seconds), then by
  ``probe_step`` and only once ``quiet_after_refusal_s`` passed without a refusal (a plan upgrade is
  found, slowly, with a few refusals each time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

#: Probing never goes past this many times the configured limit.
MAX_FACTOR: Final = 50.0


@dataclass(frozen=True, slots=True)
class LearningPolicy:
    """How fast an account's estimated limit moves; times in seconds."""

    window_s: float = 60.0
    probe_every_s: float = 10.0
    discovery_step: float = 1.0
    probe_step: float = 0.05
    quiet_after_refusal_s: float = 300.0
    settle_s: float = 5.0
    #: A probe period is busy when this share of its requests (and at least ``min_busy_requests``)
    #: waited for their slot in the budget: the estimate, not the work, held them back.
    busy_share: float = 0.5
    min_busy_requests: int = 3
    floor_per_min: float = 1.0

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.probe_every_s <= 0 or self.floor_per_min <= 0:
            raise ValueError("windows, periods and the floor must be positive")
        if self.discovery_step < 0 or self.probe_step < 0 or not 0 < self.busy_share <= 1:
            raise ValueError("steps must be >= 0 and busy_share in (0, 1]")


@dataclass(frozen=True, slots=True)
class LearnedLimit:
    """An account's estimated limit in requests a minute; instants in epoch seconds.

    ``refused_at`` is the last refusal (``None``: the account never refused, it is still being
    discovered); ``changed_at`` the last change of ``per_min``.
    """

    per_min: float
    changed_at: float
    refused_at: float | None = None

    @property
    def discovering(self) -> bool:
        return self.refused_at is None


def probe_ceiling(configured_per_min: float, *, beyond_configured: bool) -> float:
    """How far probing may raise an account's estimate: up to 50 times the configured limit, or only
    back up to it (a live Chargebee site that exceeds its limit is flagged, see the importer guide)."""
    return configured_per_min * (MAX_FACTOR if beyond_configured else 1.0)


def starting_limit(configured_per_min: float, now: float) -> LearnedLimit:
    """What an account nothing was learned about starts from: the configured limit, discovering."""
    return LearnedLimit(per_min=configured_per_min, changed_at=now)


def after_refusal(
    limit: LearnedLimit, *, now: float, accepted_in_window: int, policy: LearningPolicy
) -> LearnedLimit | None:
    """The estimate after a 429, or ``None`` when this refusal teaches nothing new."""
    if limit.refused_at is not None and now - limit.refused_at < policy.settle_s:
        return None
    evidence = max(float(accepted_in_window), policy.floor_per_min)
    if evidence < limit.per_min:
        return LearnedLimit(per_min=evidence, changed_at=now, refused_at=now)
    return replace(limit, refused_at=now)


def is_busy(requests: int, waited: int, policy: LearningPolicy) -> bool:
    """Whether a period's requests were held back by the budget (``waited`` of ``requests``)."""
    return waited >= policy.min_busy_requests and waited >= policy.busy_share * requests


def after_busy_period(
    limit: LearnedLimit, *, now: float, ceiling_per_min: float, policy: LearningPolicy
) -> LearnedLimit | None:
    """The estimate raised by a probe (never past ``ceiling_per_min``), or ``None`` when it is not
    time to probe."""
    if now - limit.changed_at < policy.probe_every_s:
        return None
    if limit.refused_at is not None and now - limit.refused_at < policy.quiet_after_refusal_s:
        return None
    step = policy.discovery_step if limit.discovering else policy.probe_step
    raised = min(limit.per_min * (1.0 + step), ceiling_per_min)
    if raised <= limit.per_min:
        return None
    return replace(limit, per_min=raised, changed_at=now)


def resume_delay_s(
    accepted: Sequence[float], *, now: float, limit: float, pace_per_min: float, window_s: float
) -> float:
    """How long to wait after a refusal so that sending at ``pace_per_min`` is not refused again.

    ``accepted`` are the instants (oldest first) of the requests the site accepted in the past
    window, and ``limit`` how many it holds. A request fits only while the window holds fewer than
    ``limit``: the ``k``-th request sent from now on must wait until the ``(k + n - limit)``-th oldest
    of the ``n`` is ``window_s`` old. Pacing after a delay ``d`` sends it at ``now + d + k × 60 /
    pace_per_min``, hence ``d``.
    """
    interval_s = 60.0 / pace_per_min
    recent = [instant for instant in accepted if instant > now - window_s]
    offset = len(recent) - int(limit)
    delay = 0.0
    for index in range(max(offset, 0), len(recent)):
        delay = max(delay, recent[index] + window_s - now - (index - offset) * interval_s)
    return delay
