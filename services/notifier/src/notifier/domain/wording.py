"""Words people read: processor and resource names, numbers, durations, failures and lost
connections explained."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

PROCESSOR_NAMES: Final[Mapping[str, str]] = {"stripe": "Stripe", "chargebee": "Chargebee"}

#: Resources in the order a person thinks of them: who pays, for what, and what they were billed.
RESOURCE_LABELS: Final[Mapping[str, str]] = {
    "customers": "Customers",
    "subscriptions": "Subscriptions",
    "invoices": "Invoices",
    "coupons": "Coupons",
    "prices": "Prices and plans",
    "products": "Products",
    "cancellations": "Cancellations",
}

#: What the imported history now powers in the app, named as the user sees it there.
POWERED_FEATURES: Final = (
    "your past cancellations, with the reasons customers gave",
    "churn metrics: customer and revenue churn month by month",
    "churn-prevention offers (coupons and trial extensions) for customers about to cancel",
)


def processor_name(processor: str | None) -> str:
    """``stripe`` → ``Stripe``; an unknown or missing processor reads as the generic phrase."""
    if not processor:
        return "billing"
    return PROCESSOR_NAMES.get(processor.lower(), processor.replace("_", " ").title())


def resource_label(resource: str) -> str:
    return RESOURCE_LABELS.get(resource, resource.replace("_", " ").strip().capitalize())


def resource_order(resource: str) -> tuple[int, str]:
    """Sort key: known resources in their reading order, then any new ones alphabetically."""
    known = list(RESOURCE_LABELS)
    return (known.index(resource), "") if resource in known else (len(known), resource)


def format_count(count: int) -> str:
    """``12345`` → ``12,345``."""
    return f"{count:,}"


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """``1 past cancellation``, ``1,204 past cancellations``."""
    noun = singular if count == 1 else (plural or f"{singular}s")
    return f"{format_count(count)} {noun}"


def format_duration(elapsed: timedelta) -> str:
    """A rough, friendly duration: ``under a minute``, ``4 minutes``, ``2 hours 5 minutes``."""
    seconds = max(0, int(elapsed.total_seconds()))
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    if minutes < 60:
        return counted(minutes, "minute")
    hours, minutes = divmod(minutes, 60)
    return counted(hours, "hour") + (f" {counted(minutes, 'minute')}" if minutes else "")


@dataclass(frozen=True, slots=True)
class FailureExplanation:
    """A failure code in plain words: what went wrong and what the reader can do about it."""

    what_happened: str
    what_to_do: str
    #: The button's words: reconnecting when the credentials are the problem, else trying again.
    action: str


_RECONNECT: Final = "Reconnect {processor}"
_TRY_AGAIN: Final = "Open the app"

_EXPLANATIONS: Final[Mapping[str, FailureExplanation]] = {
    "key_rejected": FailureExplanation(
        "{Processor} stopped accepting the API key we were given: it was revoked, rolled or changed.",
        "Reconnect {processor} with a current key and we will import your history again from the start.",
        _RECONNECT,
    ),
    "credentials_rejected": FailureExplanation(
        "{Processor} stopped accepting the API key we were given: it was revoked, rolled or changed.",
        "Reconnect {processor} with a current key of the same account; what was already imported is "
        "kept, and the import picks up from there.",
        _RECONNECT,
    ),
    "deauthorized": FailureExplanation(
        "Our access to your {processor} account was removed while the import was running.",
        "Reconnect {processor} and approve the access request; what was already imported is kept.",
        _RECONNECT,
    ),
    "insufficient_permissions": FailureExplanation(
        "The key we were given is not allowed to read all of your billing data.",
        "Reconnect {processor} with a key that can read customers, subscriptions, invoices, coupons "
        "and prices; a restricted key needs read access to each of them.",
        _RECONNECT,
    ),
    "authorization_denied": FailureExplanation(
        "Access to your account at {processor} was not granted, or was withdrawn.",
        "Reconnect {processor} and approve the access request.",
        _RECONNECT,
    ),
    "account_mismatch": FailureExplanation(
        "The account that approved access at {processor} is not the one the key belongs to.",
        "Reconnect {processor}, signing in to the same account the key comes from.",
        _RECONNECT,
    ),
    "site_not_found": FailureExplanation(
        "We could no longer find your site or account at {processor}: it may have been renamed or closed.",
        "Reconnect {processor} with the site's current name.",
        _RECONNECT,
    ),
    "site_blocked": FailureExplanation(
        "{Processor} is blocking access to your site, often because of the site's own IP or API settings.",
        "Check the API access settings of your site at {processor}, then reconnect.",
        _RECONNECT,
    ),
    "rate_limited": FailureExplanation(
        "{Processor} kept limiting how fast we could read your data, for longer than we could wait.",
        "Nothing you did caused this. Start the import again from the app in a little while; "
        "what was already imported is kept.",
        _TRY_AGAIN,
    ),
    "processor_unavailable": FailureExplanation(
        "{Processor} was unavailable or kept timing out for longer than we could wait.",
        "Nothing you did caused this. Start the import again from the app once {processor} is back; "
        "what was already imported is kept.",
        _TRY_AGAIN,
    ),
}

_UNKNOWN: Final = FailureExplanation(
    "Something went wrong on our side while importing your billing data from {processor}.",
    "We have been alerted. You can start the import again from the app; if it fails again, contact "
    "our support team and quote the details at the end of this email.",
    _TRY_AGAIN,
)


def explain_failure(code: str, processor: str | None) -> FailureExplanation:
    """The plain-words explanation of an ``ImportFailed`` code, with the processor named."""
    known = processor_name(processor) if processor else None
    words = {
        "processor": known or "your payment processor",
        "Processor": known or "Your payment processor",
    }
    template = _EXPLANATIONS.get(code, _UNKNOWN)
    return FailureExplanation(
        what_happened=template.what_happened.format(**words),
        what_to_do=template.what_to_do.format(**words),
        action=template.action.format(**words),
    )


@dataclass(frozen=True, slots=True)
class LossExplanation:
    """A lost connection in plain words: what happened, what stays, and how to reconnect."""

    what_happened: str
    what_stays: str
    what_to_do: str
    action: str


_LOSSES: Final[Mapping[str, tuple[str, str]]] = {
    "deauthorized": (
        "Access for our app was removed from your {Processor} account (in {Processor}'s settings, "
        "under connected or installed apps), so we can no longer read your billing data there.",
        "Reconnect {Processor} from the app and approve the access request again, with the same "
        "{Processor} account.",
    ),
    "credentials_rejected": (
        "{Processor} no longer accepts the API key you gave us: it was revoked, rolled, deleted or "
        "changed, so we can no longer read your billing data there.",
        "Create a new API key in {Processor} for the same account (or site), then reconnect "
        "{Processor} from the app with it.",
    ),
}


def explain_loss(reason: str, processor: str | None) -> LossExplanation:
    """The plain-words explanation of a ``ConnectionLost`` reason, with the processor named."""
    name = processor_name(processor) if processor else "your payment processor"
    what_happened, what_to_do = _LOSSES.get(reason, _LOSSES["credentials_rejected"])
    return LossExplanation(
        what_happened=what_happened.format(Processor=name),
        what_stays=(
            "Everything imported so far stays: your past cancellations, churn metrics and recovered "
            "revenue are still there. Keeping them up to date and making churn-prevention offers "
            "(coupons and trial extensions) are paused until you reconnect."
        ),
        what_to_do=what_to_do.format(Processor=name),
        action=f"Reconnect {name}",
    )
