"""The shapes every service accepts for a business's account id and a contact's email address.

An account id is part of every Kafka key and every record key (``account_id:processor:object_id``),
so it may not hold the key's separator ``:``; the same pattern guards the HTTP APIs, the gateway's
Kafka intake and every event a service parses.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field

ACCOUNT_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"
ACCOUNT_ID_MAX_LENGTH: Final = 128
EMAIL_PATTERN: Final = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
EMAIL_MAX_LENGTH: Final = 254

AccountId = Annotated[str, Field(min_length=1, max_length=ACCOUNT_ID_MAX_LENGTH, pattern=ACCOUNT_ID_PATTERN)]
ContactEmail = Annotated[str, Field(min_length=3, max_length=EMAIL_MAX_LENGTH, pattern=EMAIL_PATTERN)]
