"""Churn answered from a stored summary of the account (``domain.churn.ChurnSummary``), corrected
or rebuilt from the subscriptions whenever they changed.

A summary is *current* when it was built at the account's present inputs version (sync moves the
version on after the subscriptions or coupons it writes or removes, and notes which) and no import
has written records since its reading started (none running or finalizing, none ended after it). A
query reads the stored summary (one document, O(months)) and answers from it when current. When
only sync changes of subscriptions (at most ``CHURN_CORRECTION_LIMIT``) came since, it corrects it:
the changed subscriptions' customers, what they add now (their records read by key) replaces what
they added to the summary (the build's stored shares). Otherwise it rebuilds it (the whole account
read in batches, swept in a worker thread, as the former per-request computation did), stores it
and answers from that. So an answer is never older than the records were when the query arrived:
exactly what computing it from every subscription would give.

Rebuilds also run in the background (``rebuild_unsettled``, a periodic job of every process):
accounts whose inputs changed at least ``CHURN_SETTLE_S`` ago are claimed for
``CHURN_REBUILD_LEASE_S`` and rebuilt, unless queries correct them by at most ``CHURN_FOLD_AFTER``
subscriptions (then they are looked at again when the lease runs out). An import marks its account
when it completes. One process builds an account's summary once at a time: a query that arrives
while a rebuild that read the inputs at its version runs waits for that one.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from contracts.runtime.logging import get_logger
from contracts.topics import billing_record_key

from importer.domain.churn import CHURN_FIELDS, ChurnSummary, ChurnSummaryBuilder, share_of
from importer.domain.ports import ChurnSummaries, Clock, ImportRepository, RecordQueries, StoredChurn

_log = get_logger(__name__)

#: Subscriptions read and swept per turn of a rebuild: bounds its memory and each stall.
CHURN_BATCH_SIZE: Final = 1000
#: A change waits this long before the background rebuild takes it: a burst is rebuilt once.
CHURN_SETTLE_S: Final = 2.0
#: How long one process may take to rebuild an account's summary before another may.
CHURN_REBUILD_LEASE_S: Final = 600.0
#: A summary is corrected by at most this many changed subscriptions; beyond, it is rebuilt.
CHURN_CORRECTION_LIMIT: Final = 500
#: The background rebuild leaves a summary that queries correct by at most this many subscriptions.
CHURN_FOLD_AFTER: Final = 100
#: Accounts one round of the background rebuild takes at most.
CHURN_REBUILDS_PER_ROUND: Final = 20


@dataclass(frozen=True, slots=True)
class _Build:
    version: int
    started: datetime
    task: asyncio.Future[ChurnSummary]


class ChurnSummaryKeeper:
    """Current churn summaries of accounts: read when current, rebuilt otherwise."""

    def __init__(
        self, imports: ImportRepository, queries: RecordQueries, summaries: ChurnSummaries, clock: Clock
    ) -> None:
        self._imports = imports
        self._queries = queries
        self._summaries = summaries
        self._clock = clock
        self._builds: dict[tuple[str, str], _Build] = {}

    async def current(self, account_id: str, processor: str) -> ChurnSummary:
        """The account's summary as the records are now."""
        stored, built = await self._read(account_id, processor)
        if stored is not None and built is not None:
            if stored.built_at_version == stored.inputs_version:
                return built
            corrected = await self._corrected(account_id, processor, stored)
            if corrected is not None:
                return corrected
        version = 0 if stored is None else stored.inputs_version
        return await self._rebuilt(account_id, processor, version)

    async def rebuild(self, account_id: str, processor: str) -> None:
        """What the background does: build the account's summary from every subscription unless it
        is current, or queries can correct it cheaply (``CHURN_FOLD_AFTER`` changed subscriptions
        at most): a large account whose subscriptions keep changing is rebuilt when its
        corrections grow, not after every burst."""
        stored, built = await self._read(account_id, processor)
        if stored is not None and built is not None:
            if stored.built_at_version == stored.inputs_version:
                return
            changed = await self._changed_since(account_id, processor, stored)
            if changed is not None and len(changed) <= CHURN_FOLD_AFTER:
                return  # claimed again once its lease runs out
        await self._rebuilt(account_id, processor, 0 if stored is None else stored.inputs_version)

    async def _read(self, account_id: str, processor: str) -> tuple[StoredChurn | None, ChurnSummary | None]:
        """The account's stored summary, and the summary itself when one was built and no import
        has written the account's records since (sync's changes it may be corrected for)."""
        stored = await self._summaries.read(account_id, processor)
        if stored is None or stored.summary is None or stored.built_from is None:
            return stored, None
        if await self._imports.writing_since(account_id, stored.built_from):
            return stored, None
        return stored, stored.summary

    async def _changed_since(self, account_id: str, processor: str, stored: StoredChurn) -> set[str] | None:
        """The subscriptions sync changed since the stored build, when a correction can say what
        they changed: every version since has its entry and none changed a coupon."""
        if stored.summary is None or stored.built_at_version is None or stored.build_id is None:
            return None
        changes = await self._summaries.changes(
            account_id, processor, stored.built_at_version, stored.inputs_version
        )
        if [change.version for change in changes] != list(
            range(stored.built_at_version + 1, stored.inputs_version + 1)
        ) or any(change.coupons for change in changes):
            return None
        return {object_id for change in changes for object_id in change.subscription_ids}

    async def _corrected(self, account_id: str, processor: str, stored: StoredChurn) -> ChurnSummary | None:
        """The stored summary brought to the records as they are now by the subscriptions sync
        changed since it was built: what their customers add now replaces what they added to it
        (its shares). ``None`` when that cannot be said exactly (a coupon changed, a change's entry
        is missing, the shares are gone) or would be dear (``CHURN_CORRECTION_LIMIT``)."""
        changed = await self._changed_since(account_id, processor, stored)
        if stored.summary is None or changed is None or len(changed) > CHURN_CORRECTION_LIMIT:
            return None
        keys = [billing_record_key(account_id, processor, object_id) for object_id in sorted(changed)]
        try:
            now, coupons, customer_then = await asyncio.gather(
                self._queries.subscriptions_by_key(keys),
                self._queries.coupons(account_id, processor),
                self._summaries.customers_of(account_id, processor, stored, changed),
            )
            now_shares = {subscription.object_id: share_of(subscription, coupons) for subscription in now}
            affected = set(customer_then.values()) | {share.customer_id for share in now_shares.values()}
            then = await self._summaries.customer_shares(account_id, processor, stored, affected)
        except LookupError:
            return None
        before, after = ChurnSummaryBuilder(coupons), ChurnSummaryBuilder(coupons)
        for customer in affected:
            kept = then.get(customer, [])
            before.add_shares(kept)
            after.add_shares(share for share in kept if share[0] not in changed)
        after.add_shares(now_shares.items())
        return stored.summary.plus(after.summary()).plus(before.summary(), sign=-1)

    async def _rebuilt(self, account_id: str, processor: str, version: int) -> ChurnSummary:
        key = (account_id, processor)
        build = self._builds.get(key)
        # Join a build in flight only when it read the inputs' version this query saw, or a later
        # one (so every record write the query must see was done before its reading), and no
        # import wrote since it started.
        joinable = (
            build is not None
            and build.version >= version
            and not await self._imports.writing_since(account_id, build.started)
        )
        if build is None or not joinable:
            started = self._clock()
            inputs_version = await self._summaries.inputs_version(account_id, processor)
            task = asyncio.ensure_future(self._build(account_id, processor, inputs_version, started))
            build = _Build(inputs_version, started, task)
            self._builds[key] = build
            task.add_done_callback(functools.partial(self._forget, key, build))
        # A caller that goes away (a closed request) leaves the build running: it is stored.
        return await asyncio.shield(build.task)

    def _forget(self, key: tuple[str, str], build: _Build, _done: object) -> None:
        if self._builds.get(key) is build:
            del self._builds[key]

    async def _build(self, account_id: str, processor: str, version: int, started: datetime) -> ChurnSummary:
        coupons = await self._queries.coupons(account_id, processor)
        builder = ChurnSummaryBuilder(coupons)
        batches = self._queries.subscription_batches(
            account_id, processor, fields=CHURN_FIELDS, batch_size=CHURN_BATCH_SIZE
        )
        # The computation is pure CPU: it runs in a worker thread, batch by batch, so the event loop
        # (page consumers, other requests) keeps turning and no batch outlives its turn.
        async for batch in batches:
            await asyncio.to_thread(builder.add, batch)
        summary = await asyncio.to_thread(builder.summary)
        saved = await self._summaries.save(
            account_id, processor, summary, builder.shares, version=version, built_from=started
        )
        _log.info(
            "churn.summary_built",
            account_id=account_id,
            processor=processor,
            inputs_version=version,
            saved=saved,
            duration_s=round((self._clock() - started).total_seconds(), 3),
        )
        return summary


async def rebuild_unsettled(keeper: ChurnSummaryKeeper, summaries: ChurnSummaries, clock: Clock) -> int:
    """One round of the background rebuild; how many accounts it took. Each account is claimed
    just before its rebuild, so a lease never runs out while earlier ones of the round are built."""
    rebuilt = 0
    while rebuilt < CHURN_REBUILDS_PER_ROUND:
        now = clock()
        claimed = await summaries.claim_unsettled(
            now - timedelta(seconds=CHURN_SETTLE_S), now, CHURN_REBUILD_LEASE_S, 1
        )
        if not claimed:
            break
        for account_id, processor in claimed:
            await keeper.rebuild(account_id, processor)
            rebuilt += 1
    return rebuilt
