"""Stopping the imports of a connection the user disconnected (they fail with ``disconnected``), or
whose credentials were lost (they fail with the loss's reason, ``deauthorized`` or
``credentials_rejected``).

Their pages still in flight are acknowledged and skipped (an import that ended imports nothing more).
"""

from __future__ import annotations

from importer.domain.model import FailureCode
from importer.service.dependencies import Dependencies
from importer.service.outcomes import fail_import


async def cancel_imports(
    deps: Dependencies,
    connection_id: str,
    code: str = FailureCode.DISCONNECTED,
    message: str = "the processor was disconnected before the import finished",
) -> list[str]:
    """Fail every unfinished import of ``connection_id``; the ids of those this call ended.

    This process also lets go of the connection's decrypted credentials at once; other replicas
    drop theirs when their short cache time is up.
    """
    deps.sources.forget(connection_id)
    ended: list[str] = []
    for job in await deps.imports.unfinished_for_connection(connection_id):
        failed = await fail_import(deps, job.import_id, code, message)
        if failed is not None:
            ended.append(job.import_id)
    return ended
