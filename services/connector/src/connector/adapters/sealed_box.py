"""Opening secrets the onboarding gateway sealed to our public key (libsodium sealed box, PyNaCl).

``api_key_sealed`` is the base64 (standard or URL-safe) of the sealed box of the UTF-8 secret.
Anything that is not such a box is refused: a plaintext key never gets used just because it
arrived where a sealed one was expected.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox
from pydantic import SecretStr

from connector.domain.base64_text import decode_key
from connector.domain.refusals import ConnectionRefused, RefusalCode, plaintext_secret

#: A sealed box carries a 32-byte ephemeral public key and a 16-byte tag before the message.
SEALED_BOX_OVERHEAD_BYTES: Final = 48
_LOOKS_LIKE_A_KEY: Final = re.compile(r"^\s*(?:(?:sk|rk|pk)_(?:live|test)_|(?:live|test)_)")


def public_key_of(private_key_b64: str) -> str:
    """The base64 public key the gateway seals to."""
    return base64.b64encode(bytes(PrivateKey(decode_key(private_key_b64)).public_key)).decode()


def seal(public_key_b64: str, secret: str) -> str:
    """What the gateway does; here for the tests and the local stack."""
    box = SealedBox(PublicKey(decode_key(public_key_b64)))
    return base64.b64encode(box.encrypt(secret.encode())).decode()


class SealedBoxSecrets:
    def __init__(self, private_key: SecretStr | None) -> None:
        self._box = (
            None if private_key is None else SealedBox(PrivateKey(decode_key(private_key.get_secret_value())))
        )

    def open(self, sealed: str) -> SecretStr:
        if _LOOKS_LIKE_A_KEY.match(sealed):
            raise plaintext_secret()
        try:
            box_bytes = decode_key(sealed)
        except (binascii.Error, ValueError):
            raise plaintext_secret() from None
        if len(box_bytes) <= SEALED_BOX_OVERHEAD_BYTES:
            raise plaintext_secret()
        if self._box is None:
            raise ConnectionRefused(
                RefusalCode.SEALED_SECRET_INVALID,
                "The connector cannot open sealed secrets right now (no private key configured).",
            )
        try:
            return SecretStr(self._box.decrypt(box_bytes).decode())
        except (CryptoError, UnicodeDecodeError):
            raise ConnectionRefused(
                RefusalCode.SEALED_SECRET_INVALID,
                "The sealed API key could not be opened: it was not sealed to this connector's public key.",
            ) from None
