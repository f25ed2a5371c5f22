"""Processor credentials as value objects that refuse bad input before any outbound request."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from contracts.events import Mode
from pydantic import SecretStr

from connector.domain.refusals import ConnectionRefused, RefusalCode

_STRIPE_KEY: Final = re.compile(r"^(sk|rk)_(live|test)_[A-Za-z0-9]{8,240}$")
_STRIPE_PUBLISHABLE: Final = re.compile(r"^pk_(live|test)_")
#: A DNS label: what Chargebee accepts as a site name, and what keeps ``{site}`` inside its host.
_CHARGEBEE_SITE: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
#: Chargebee keys are ``live_…``/``test_…`` tokens; only the characters matter for safety (Basic auth).
_CHARGEBEE_KEY: Final = re.compile(r"^[A-Za-z0-9_-]{8,200}$")
CHARGEBEE_TEST_SITE_SUFFIX: Final = "-test"


class StripeKeyKind(StrEnum):
    SECRET = "secret"  # noqa: S105 - a kind of key, not a secret
    RESTRICTED = "restricted"


@dataclass(frozen=True, slots=True)
class StripeApiKey:
    """A Stripe secret (``sk_``) or restricted (``rk_``) key; its prefix says its mode."""

    secret: SecretStr
    kind: StripeKeyKind
    mode: Mode

    @classmethod
    def parse(cls, raw: str) -> StripeApiKey:
        value = raw.strip()
        if _STRIPE_PUBLISHABLE.match(value):
            raise ConnectionRefused(
                RefusalCode.PUBLISHABLE_KEY,
                "This is a publishable key (pk_…), which cannot read billing data. Paste a secret "
                "key (sk_…) or a restricted key (rk_…) from Stripe Dashboard → Developers → API keys.",
            )
        match = _STRIPE_KEY.fullmatch(value)
        if match is None:
            raise ConnectionRefused(
                RefusalCode.INVALID_KEY_FORMAT,
                "This does not look like a Stripe API key. Paste a secret key (sk_live_…, sk_test_…) "
                "or a restricted key (rk_live_…, rk_test_…).",
            )
        kind = StripeKeyKind.SECRET if match.group(1) == "sk" else StripeKeyKind.RESTRICTED
        return cls(SecretStr(value), kind, Mode(match.group(2)))

    @property
    def restricted(self) -> bool:
        return self.kind is StripeKeyKind.RESTRICTED

    def reveal(self) -> str:
        return self.secret.get_secret_value()


@dataclass(frozen=True, slots=True)
class ChargebeeSite:
    """A validated Chargebee site name: the only thing ever put into the processor's URL."""

    name: str

    @classmethod
    def parse(cls, raw: str) -> ChargebeeSite:
        if not _CHARGEBEE_SITE.fullmatch(raw):
            raise ConnectionRefused(
                RefusalCode.INVALID_SITE,
                "Enter your Chargebee site name: the part before .chargebee.com (lower-case letters, "
                "digits and hyphens), for example acme or acme-test.",
            )
        return cls(raw)

    @property
    def mode(self) -> Mode:
        return Mode.TEST if self.name.endswith(CHARGEBEE_TEST_SITE_SUFFIX) else Mode.LIVE


@dataclass(frozen=True, slots=True)
class ChargebeeApiKey:
    secret: SecretStr

    @classmethod
    def parse(cls, raw: str) -> ChargebeeApiKey:
        value = raw.strip()
        if not _CHARGEBEE_KEY.fullmatch(value):
            raise ConnectionRefused(
                RefusalCode.INVALID_KEY_FORMAT,
                "This does not look like a Chargebee API key. Create a read-only key under "
                "Settings → Configure Chargebee → API Keys and paste it here.",
            )
        return cls(SecretStr(value))

    def reveal(self) -> str:
        return self.secret.get_secret_value()
