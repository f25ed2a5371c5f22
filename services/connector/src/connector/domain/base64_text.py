"""Binary values written as text by people and the gateway: standard or URL-safe base64, padding optional."""

from __future__ import annotations

import base64
import binascii


def decode_key(value: str) -> bytes:
    raw = value.strip()
    padded = raw + "=" * (-len(raw) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except binascii.Error:
        return base64.urlsafe_b64decode(padded)
