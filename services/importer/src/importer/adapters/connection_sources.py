"""The source of an import: its stored connection read, its credentials decrypted, a source built.

Credentials never travel in Kafka messages: each process reads the connection from the
``connections`` collection and decrypts it with ``CREDENTIALS_KEYS`` itself. A source is shared by
the pages of a connection in this process for a short while, then dropped and built again when
needed, so that a disconnected connection (its credentials destroyed) stops being read within that
time, and no decrypted credentials outlive it in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from contracts.connections import CONNECTIONS_COLLECTION, ProcessorCredentials, StoredConnection

from importer.adapters.connection_credentials import ByConnection, ProcessorAccess
from importer.adapters.sources import build_source
from importer.domain.model import ImportJob
from importer.domain.ports import SourceUnavailable
from importer.domain.source import ProcessorSource

SOURCE_TTL_S: Final = 30.0

SourceBuilder = Callable[[StoredConnection, ProcessorCredentials], ProcessorSource]


class ConnectionSourceProvider:
    """Sources by connection, each kept ``ttl_s`` at most: decrypted credentials never linger.

    Every cached source is dropped when its time is up, whether or not it is asked for again, and
    at once when its connection is disconnected (:meth:`forget`); a dropped source is closed one
    more ``ttl_s`` later, so pages still using it finish first.
    """

    def __init__(
        self, access: ProcessorAccess, *, ttl_s: float = SOURCE_TTL_S, builder: SourceBuilder | None = None
    ) -> None:
        self._access = access
        self._builder: SourceBuilder = builder or (
            lambda connection, credentials: build_source(
                connection,
                credentials,
                stripe_api_base=access.stripe_api_base,
                chargebee_url_template=access.chargebee_url_template,
                rate_budget=access.rate_budget,
                http=access.http,
                limits=access.limits,
                learner=access.learner,
                probe_live=access.probe_live,
            )
        )
        self._sources: ByConnection[ProcessorSource] = ByConnection(ttl_s, on_drop=_close)

    @property
    def cached_connections(self) -> frozenset[str]:
        """The connections whose source (and so decrypted credentials) this process holds now."""
        return self._sources.connections

    async def source_for(self, job: ImportJob) -> ProcessorSource:
        async def build() -> ProcessorSource:
            connection, credentials = await self._access.open(job.connection_id, job.account_id)
            try:
                return self._builder(connection, credentials)
            except ValueError as error:
                raise SourceUnavailable(str(error)) from error

        return await self._sources.held_or_built(job.connection_id, build)

    def forget(self, connection_id: str) -> None:
        """Drop the connection's source now (it was disconnected); its credentials leave memory."""
        self._sources.forget(connection_id)

    async def replaced_since(self, job: ImportJob, refused_version: int | None) -> bool:
        if refused_version is None:
            return False
        document = await self._access.database[CONNECTIONS_COLLECTION].find_one(
            {"_id": job.connection_id}, projection={"credentials_version": True}
        )
        if document is None or int(document.get("credentials_version") or 0) <= refused_version:
            return False
        self._sources.forget(job.connection_id)
        return True

    async def aclose(self) -> None:
        await self._sources.aclose()


async def _close(source: ProcessorSource) -> None:
    await source.aclose()
