"""A stored connection opened for reading its processor, and the short-lived cache of what was built.

Both the import's page sources and sync's readers hold a connection's decrypted credentials; they
take the same settings (:class:`ProcessorAccess`), open the connection the same way
(:meth:`ProcessorAccess.open`) and keep what they build in one kind of cache (:class:`ByConnection`),
which drops every entry when its time is up, whether or not it is asked for again, and at once on
:meth:`ByConnection.forget` (the connection was disconnected).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
from contracts.connections import (
    CONNECTIONS_COLLECTION,
    ConnectionStatus,
    CredentialCipher,
    CredentialsUnavailable,
    ProcessorCredentials,
    StoredConnection,
)
from pymongo.asynchronous.database import AsyncDatabase

from importer.adapters.learned_limits import RateLearner
from importer.adapters.rate_budget import RateBudget
from importer.adapters.sources import ProcessorLimits
from importer.domain.ports import SourceUnavailable

Built = TypeVar("Built")


@dataclass(frozen=True)
class ProcessorAccess:
    """What reading a connection's processor takes: the stored connections and the key to their
    credentials, where the processors answer, the process's HTTP client, the rate budget, the
    processors' published limits and the Chargebee sites' learned ones (``learner``; probed past
    the configured limit on live sites only with ``probe_live``)."""

    database: AsyncDatabase[Any]
    cipher: CredentialCipher
    stripe_api_base: str
    chargebee_url_template: str
    rate_budget: RateBudget
    http: httpx.AsyncClient
    limits: ProcessorLimits = field(default_factory=ProcessorLimits)
    learner: RateLearner | None = None
    probe_live: bool = False

    async def open(
        self, connection_id: str, account_id: str
    ) -> tuple[StoredConnection, ProcessorCredentials]:
        """The connected connection and its decrypted credentials; :class:`SourceUnavailable` otherwise."""
        document = await self.database[CONNECTIONS_COLLECTION].find_one({"_id": connection_id})
        if document is None:
            raise SourceUnavailable("the connection no longer exists")
        connection = StoredConnection.model_validate(document)
        if connection.account_id != account_id:
            raise SourceUnavailable("the connection belongs to another account")
        if connection.status is not ConnectionStatus.CONNECTED or connection.credentials_ciphertext is None:
            raise SourceUnavailable(f"the connection is {connection.status.value}, not connected")
        try:
            return connection, self.cipher.decrypt(connection.credentials_ciphertext)
        except CredentialsUnavailable as error:
            raise SourceUnavailable("no configured key opens the connection's credentials") from error


@dataclass(slots=True)
class _Entry(Generic[Built]):
    value: Built
    expiry: asyncio.TimerHandle | None = None


class ByConnection(Generic[Built]):
    """What was built per connection, each kept ``ttl_s`` at most.

    ``on_drop`` learns of each dropped value one more ``ttl_s`` later, so that work still using it
    finishes first (a page source is closed then).
    """

    def __init__(self, ttl_s: float, *, on_drop: Callable[[Built], Awaitable[None]] | None = None) -> None:
        self._ttl_s = ttl_s
        self._on_drop = on_drop
        self._entries: dict[str, _Entry[Built]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._dropping: set[asyncio.Future[None]] = set()

    @property
    def connections(self) -> frozenset[str]:
        """The connections whose values (and so decrypted credentials) are held now."""
        return frozenset(self._entries)

    def get(self, connection_id: str) -> Built | None:
        entry = self._entries.get(connection_id)
        return None if entry is None else entry.value

    async def held_or_built(self, connection_id: str, build: Callable[[], Awaitable[Built]]) -> Built:
        """The value held for the connection, else the one ``build`` makes now and this keeps: one
        build at a time per connection, and those waiting for it take its value."""
        if (held := self.get(connection_id)) is not None:
            return held
        async with self._locks.setdefault(connection_id, asyncio.Lock()):
            if (held := self.get(connection_id)) is not None:
                return held
            value = await build()
            entry = _Entry(value)
            entry.expiry = asyncio.get_running_loop().call_later(
                self._ttl_s, self._drop, connection_id, entry
            )
            self._entries[connection_id] = entry
            return value

    def forget(self, connection_id: str) -> None:
        entry = self._entries.get(connection_id)
        if entry is not None:
            if entry.expiry is not None:
                entry.expiry.cancel()
            self._drop(connection_id, entry)

    async def aclose(self) -> None:
        for entry in self._entries.values():
            if entry.expiry is not None:
                entry.expiry.cancel()
            if self._on_drop is not None:
                await self._on_drop(entry.value)
        self._entries.clear()
        self._locks.clear()

    def _drop(self, connection_id: str, entry: _Entry[Built]) -> None:
        if self._entries.get(connection_id) is entry:
            del self._entries[connection_id]
            lock = self._locks.get(connection_id)
            if lock is not None and not lock.locked():
                del self._locks[connection_id]
        if self._on_drop is not None:
            asyncio.get_running_loop().call_later(self._ttl_s, self._drop_later, entry.value)

    def _drop_later(self, value: Built) -> None:
        assert self._on_drop is not None
        task = asyncio.ensure_future(self._on_drop(value))
        self._dropping.add(task)
        task.add_done_callback(self._dropping.discard)
