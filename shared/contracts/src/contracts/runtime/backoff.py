"""How long to wait before trying again: the one backoff curve, and the one ``Retry-After`` reader."""

from __future__ import annotations

import email.utils
import math
import random
from datetime import UTC, datetime


def backoff_ceiling_s(failures: int, *, base_s: float, cap_s: float) -> float:
    """The curve without jitter after ``failures`` failed tries (1 for the first): ``base_s``,
    doubling with each failure up to ``cap_s``."""
    return min(cap_s, base_s * 2.0 ** min(max(failures - 1, 0), 62))


def backoff_s(failures: int, *, base_s: float, cap_s: float) -> float:
    """Exponential backoff with jitter after ``failures`` failed tries: in ``[ceiling / 2, ceiling]``
    of :func:`backoff_ceiling_s`."""
    ceiling = backoff_ceiling_s(failures, base_s=base_s, cap_s=cap_s)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header in seconds from now (it is a number of seconds or an HTTP date), at
    least 0; ``None`` when absent or unreadable. Callers cap it: a server may ask for a year."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return None if math.isnan(seconds) else max(seconds, 0.0)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - (now or datetime.now(UTC))).total_seconds(), 0.0)
