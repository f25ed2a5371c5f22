"""The source of an import: its stored connection read, its credentials decrypted, a source built.

Credentials never travel in Kafka messages: each process reads the connection from the
``connections`` collection and decrypts it with ``CREDENTIALS_KEYS`` itself. A source is shared by
the pages of a connection in this process for a short while, then built again, so that a
disconnected connection (its credentials destroyed) stops being read within that time.
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


class ConnectionSourceProvider:
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

    async def source_for(self, job: ImportJob) -> ProcessorSource:
        key = job.connection_id
        cached = self._cache.get(key)
        if cached is not None and cached.expires_at > time.monotonic():
            return cached.source
        async with self._locks.setdefault(key, asyncio.Lock()):
            expired = self._cache.get(key)
            if expired is not None and expired.expires_at > time.monotonic():
                return expired.source
            source = await self._build(job)
            self._cache[key] = _Cached(source, time.monotonic() + self._ttl_s)
        if expired is not None:
            # Pages still using the old source finish with it before it is closed.
            asyncio.get_running_loop().call_later(self._ttl_s, _close_later, expired.source)
        return source

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
            await cached.source.aclose()
        self._cache.clear()


def _close_later(source: ProcessorSource) -> None:
    task = asyncio.ensure_future(source.aclose())
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


_CLOSING: set[asyncio.Future[None]] = set()
