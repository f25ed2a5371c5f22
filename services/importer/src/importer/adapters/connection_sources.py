"""The source of an import: its stored connection read, its credentials decrypted, a source built.

Credentials never travel in Kafka messages: each process reads the connection from the
``connections`` collection and decrypts it with ``CREDENTIALS_KEYS`` itself. A source is shared by
the pages of a connection in this process for a short while, then dropped and built again when
needed, so that a disconnected connection (its credentials destroyed) stops being read within that
time, and no decrypted credentials outlive it in memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

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

from importer.adapters.rate_budget import RateBudget
from importer.adapters.sources import ProcessorLimits, build_source
from importer.domain.model import ImportJob
from importer.domain.ports import SourceUnavailable
from importer.domain.source import ProcessorSource

SOURCE_TTL_S: Final = 30.0

SourceBuilder = Callable[[StoredConnection, ProcessorCredentials], ProcessorSource]


@dataclass(slots=True)
class _Cached:
    source: ProcessorSource
    expires_at: float
    expiry: asyncio.TimerHandle | None = None


class ConnectionSourceProvider:
    """Sources by connection, each kept ``ttl_s`` at most: decrypted credentials never linger.

    Every cached source is dropped when its time is up, whether or not it is asked for again, and
    at once when its connection is disconnected (:meth:`forget`); a dropped source is closed one
    more ``ttl_s`` later, so pages still using it finish first.
    """

    def __init__(
        self,
        database: AsyncDatabase[Any],
        cipher: CredentialCipher,
        *,
        stripe_api_base: str,
        chargebee_url_template: str,
        rate_budget: RateBudget,
        http: httpx.AsyncClient,
        limits: ProcessorLimits | None = None,
        ttl_s: float = SOURCE_TTL_S,
        builder: SourceBuilder | None = None,
    ) -> None:
        self._connections = database[CONNECTIONS_COLLECTION]
        self._cipher = cipher
        self._ttl_s = ttl_s
        self._builder: SourceBuilder = builder or (
            lambda connection, credentials: build_source(
                connection,
                credentials,
                stripe_api_base=stripe_api_base,
                chargebee_url_template=chargebee_url_template,
                rate_budget=rate_budget,
                http=http,
                limits=limits,
            )
        )
        self._cache: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def cached_connections(self) -> frozenset[str]:
        """The connections whose source (and so decrypted credentials) this process holds now."""
        return frozenset(self._cache)

    async def source_for(self, job: ImportJob) -> ProcessorSource:
        key = job.connection_id
        cached = self._cache.get(key)
        if cached is not None and cached.expires_at > time.monotonic():
            return cached.source
        async with self._locks.setdefault(key, asyncio.Lock()):
            cached = self._cache.get(key)
            if cached is not None and cached.expires_at > time.monotonic():
                return cached.source
            source = await self._build(job)
            entry = _Cached(source, time.monotonic() + self._ttl_s)
            entry.expiry = asyncio.get_running_loop().call_later(self._ttl_s, self._drop, key, entry)
            self._cache[key] = entry
        return source

    def forget(self, connection_id: str) -> None:
        """Drop the connection's source now (it was disconnected); its credentials leave memory."""
        entry = self._cache.get(connection_id)
        if entry is not None:
            if entry.expiry is not None:
                entry.expiry.cancel()
            self._drop(connection_id, entry)

    def _drop(self, key: str, entry: _Cached) -> None:
        if self._cache.get(key) is entry:
            del self._cache[key]
            lock = self._locks.get(key)
            if lock is not None and not lock.locked():
                del self._locks[key]
        # Pages still using the source finish with it before it is closed.
        asyncio.get_running_loop().call_later(self._ttl_s, _close_later, entry.source)

    async def _build(self, job: ImportJob) -> ProcessorSource:
        document = await self._connections.find_one({"_id": job.connection_id})
        if document is None:
            raise SourceUnavailable("the connection no longer exists")
        connection = StoredConnection.model_validate(document)
        if connection.account_id != job.account_id:
            raise SourceUnavailable("the connection belongs to another account")
        if connection.status is not ConnectionStatus.CONNECTED or connection.credentials_ciphertext is None:
            raise SourceUnavailable(f"the connection is {connection.status.value}, not connected")
        try:
            credentials = self._cipher.decrypt(connection.credentials_ciphertext)
        except CredentialsUnavailable as error:
            raise SourceUnavailable("no configured key opens the connection's credentials") from error
        try:
            return self._builder(connection, credentials)
        except ValueError as error:
            raise SourceUnavailable(str(error)) from error

    async def aclose(self) -> None:
        for cached in self._cache.values():
            if cached.expiry is not None:
                cached.expiry.cancel()
            await cached.source.aclose()
        self._cache.clear()
        self._locks.clear()


def _close_later(source: ProcessorSource) -> None:
    task = asyncio.ensure_future(source.aclose())
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


_CLOSING: set[asyncio.Future[None]] = set()
