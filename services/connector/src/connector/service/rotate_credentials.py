"""Use case: re-encrypt every stored credential under the newest of ``CREDENTIALS_KEYS``."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    async for connection_id, ciphertext in connections.stored_credentials():
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
        if await connections.replace_credentials(connection_id, old=ciphertext, new=rotated):
            report.rotated += 1
        else:
            report.changed_meanwhile += 1
    return report
