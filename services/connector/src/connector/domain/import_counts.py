"""How far an import got: objects imported per resource, as the importer's ``imports.v1`` events said."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ImportCounts:
    """Objects imported so far per resource (the importer's names), and past cancellations once done."""

    import_id: str
    resources: Mapping[str, int] = field(default_factory=dict)
    past_cancellations: int | None = None


class ImportCountsStore(Protocol):
    """Counts per import. Counts only grow: a late or redelivered event never lowers one."""

    async def record(
        self,
        account_id: str,
        import_id: str,
        resources: Mapping[str, int],
        *,
        at: datetime,
        past_cancellations: int | None = None,
    ) -> None: ...

    async def counts_of(self, account_id: str, import_id: str) -> ImportCounts | None: ...
