"""Learning a site's real limit: the rules one by one, then whole runs against a simulated site."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import pytest
from importer.domain.rate_learning import (
    LearnedLimit,
    LearningPolicy,
    after_busy_period,
    after_refusal,
    is_busy,
    probe_ceiling,
    resume_delay_s,
    starting_limit,
)
from sandbox.ratelimit import SlidingWindowLimit

POLICY = LearningPolicy()
CEILING = probe_ceiling(150.0, beyond_configured=True)


def test_a_refusal_lowers_the_estimate_to_the_requests_accepted_in_the_window() -> None:
    learned = after_refusal(starting_limit(150.0, 0.0), now=40.0, accepted_in_window=100, policy=POLICY)
    assert learned == LearnedLimit(per_min=100.0, changed_at=40.0, refused_at=40.0)
    assert not learned.discovering


def test_a_refusal_never_raises_the_estimate_and_ends_discovery() -> None:
    learned = after_refusal(starting_limit(150.0, 0.0), now=70.0, accepted_in_window=180, policy=POLICY)
    assert learned == LearnedLimit(per_min=150.0, changed_at=0.0, refused_at=70.0)


def test_refusals_right_after_one_answer_requests_sent_before_it() -> None:
    first = after_refusal(starting_limit(150.0, 0.0), now=40.0, accepted_in_window=100, policy=POLICY)
    assert first is not None
    assert after_refusal(first, now=42.0, accepted_in_window=97, policy=POLICY) is None
    later = after_refusal(first, now=60.0, accepted_in_window=90, policy=POLICY)
    assert later is not None
    assert later.per_min == 90.0


def test_the_estimate_never_falls_under_the_floor() -> None:
    learned = after_refusal(starting_limit(150.0, 0.0), now=1.0, accepted_in_window=0, policy=POLICY)
    assert learned is not None
    assert learned.per_min == POLICY.floor_per_min


def test_busy_means_most_requests_waited_for_their_slot() -> None:
    assert is_busy(10, 6, POLICY)
    assert not is_busy(10, 4, POLICY)
    assert not is_busy(2, 2, POLICY)  # too few to tell


def test_discovery_doubles_the_estimate_every_period() -> None:
    limit = starting_limit(150.0, 0.0)
    assert after_busy_period(limit, now=5.0, ceiling_per_min=CEILING, policy=POLICY) is None
    raised = after_busy_period(limit, now=10.0, ceiling_per_min=CEILING, policy=POLICY)
    assert raised == LearnedLimit(per_min=300.0, changed_at=10.0)


def test_after_a_refusal_probing_waits_then_takes_small_steps() -> None:
    refused = LearnedLimit(per_min=100.0, changed_at=40.0, refused_at=40.0)
    assert after_busy_period(refused, now=300.0, ceiling_per_min=CEILING, policy=POLICY) is None
    raised = after_busy_period(refused, now=341.0, ceiling_per_min=CEILING, policy=POLICY)
    assert raised is not None
    assert raised.per_min == pytest.approx(105.0)


def test_probing_stops_at_the_ceiling() -> None:
    limit = LearnedLimit(per_min=CEILING, changed_at=0.0)
    assert after_busy_period(limit, now=100.0, ceiling_per_min=CEILING, policy=POLICY) is None
    at_configured = starting_limit(150.0, 0.0)
    live = probe_ceiling(150.0, beyond_configured=False)
    assert after_busy_period(at_configured, now=100.0, ceiling_per_min=live, policy=POLICY) is None
    lowered = LearnedLimit(per_min=140.0, changed_at=0.0, refused_at=0.0)
    raised = after_busy_period(lowered, now=400.0, ceiling_per_min=live, policy=POLICY)
    assert raised is not None
    assert raised.per_min == 147.0


def test_resume_waits_until_the_window_has_room_at_the_new_pace() -> None:
    # 100 accepted in the last 60 s, the second half twice as fast as the first (a probe).
    accepted = [float(i) for i in range(0, 30, 1)] + [30.0 + i * 30.0 / 70 for i in range(70)]
    delay = resume_delay_s(accepted, now=60.0, limit=100, pace_per_min=100.0, window_s=60.0)
    # Sending at 100/min from 60 + delay: the k-th request goes after the k-th oldest left.
    assert all(60.0 + delay + k * 0.6 >= accepted[k] + 60.0 - 1e-9 for k in range(100))
    assert delay == pytest.approx(max(accepted[k] + 60.0 - 60.0 - k * 0.6 for k in range(100)))
    # A window filled evenly at the pace has room as soon as its oldest leaves.
    even = [i * 0.6 for i in range(100)]
    assert resume_delay_s(even, now=60.0, limit=100, pace_per_min=100.0, window_s=60.0) == pytest.approx(0.0)


@dataclass
class Run:
    learned: LearnedLimit
    sent: int
    refused: int
    finished_s: float


def simulate(site_per_min: int, configured: float, requests: int, headroom: float = 0.99) -> Run:
    """One sender that always has work, paced at the estimate, against a site counting its window."""
    now = 0.0
    site = SlidingWindowLimit(site_per_min, 60.0, clock=lambda: now)
    limit = starting_limit(configured, now)
    accepted: deque[float] = deque()
    next_slot = 0.0
    period_start, period_requests = 0.0, 0
    sent = refused = done = 0
    while done < requests:
        now = max(now, next_slot)
        sent += 1
        wait_s = site.admit()
        while accepted and accepted[0] <= now - 60.0:
            accepted.popleft()
        if wait_s is None:
            done += 1
            accepted.append(now)
            period_requests += 1
            if now - period_start >= POLICY.probe_every_s:
                if is_busy(period_requests, period_requests, POLICY):
                    limit = (
                        after_busy_period(
                            limit,
                            now=now,
                            ceiling_per_min=probe_ceiling(configured, beyond_configured=True),
                            policy=POLICY,
                        )
                        or limit
                    )
                period_start, period_requests = now, 0
            next_slot = now + 60.0 / (limit.per_min * headroom)
            continue
        refused += 1
        limit = after_refusal(limit, now=now, accepted_in_window=len(accepted), policy=POLICY) or limit
        pace = limit.per_min * headroom
        delay = resume_delay_s(list(accepted), now=now, limit=limit.per_min, pace_per_min=pace, window_s=60.0)
        next_slot = now + max(math.ceil(wait_s), delay)
    return Run(limit, sent, refused, now)


@pytest.mark.parametrize(
    ("site", "configured"), [(100, 150.0), (150, 150.0), (300, 150.0), (600, 150.0), (3500, 150.0)]
)
def test_a_run_learns_the_site_limit_within_its_bounds(site: int, configured: float) -> None:
    requests = site * 5  # five minutes' worth at the real limit
    run = simulate(site, configured, requests)
    assert site * 0.9 <= run.learned.per_min <= site * 1.05
    assert run.refused / run.sent < 0.02
    bound_s = requests / site * 60.0
    assert run.finished_s <= bound_s * 1.15
