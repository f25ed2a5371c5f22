"""Use case: re-encrypt every stored credential under the newest of ``CREDENTIALS_KEYS``: each
connection's credentials, and the new key a pending Stripe reconnect keeps until its callback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from contracts.connections import CredentialCipher, CredentialsUnavailable

from connector.domain.ports import ConnectionStore


@dataclass(slots=True)
class RotationReport:
    rotated: int = 0
    #: Already under the newest key (a second run rotates nothing).
    already_current: int = 0
    #: Changed by someone else while rotating (written anew, so already under a current key).
    changed_meanwhile: int = 0
    #: Connections no configured key opens: keep the old key until they are dealt with.
    unreadable: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.unreadable


async def rotate_credentials(
    connections: ConnectionStore, cipher: CredentialCipher, newest: CredentialCipher
) -> RotationReport:
    """``cipher`` holds every configured key, newest first; ``newest`` only the first of them."""
    report = RotationReport()
    await _rotate(connections.stored_credentials(), connections.replace_credentials, cipher, newest, report)
    await _rotate(
        connections.stored_pending_credentials(),
        connections.replace_pending_credentials,
        cipher,
        newest,
        report,
    )
    return report


class _Replace(Protocol):
    async def __call__(self, connection_id: str, *, old: str, new: str) -> bool: ...


async def _rotate(
    stored: AsyncIterator[tuple[str, str]],
    replace: _Replace,
    cipher: CredentialCipher,
    newest: CredentialCipher,
    report: RotationReport,
) -> None:
    async for connection_id, ciphertext in stored:
        try:
            newest.decrypt(ciphertext)
        except CredentialsUnavailable:
            pass
        else:
            report.already_current += 1
            continue
        try:
            rotated = cipher.rotate(ciphertext)
        except CredentialsUnavailable:
            report.unreadable.append(connection_id)
            continue
        if await replace(connection_id, old=ciphertext, new=rotated):
            report.rotated += 1
        else:
            report.changed_meanwhile += 1
