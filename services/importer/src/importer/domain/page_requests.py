"""The page-request message of the internal topic ``importer.page-requests.v1`` (not public).

One message asks for one page of the ledger. It carries the whole query so that a message read on
its own (in the dead-letter topic, say) says what it was for; the ledger stays the truth. The key,
import and page id together, spreads an import's windows over every partition; a chain's
continuation is sent to the partition its page came from instead (``service.prefetch``).
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

from importer.domain.planning import PlannedPage
from importer.domain.source import PageQuery, Window

PAGE_REQUESTS_TOPIC: Final = "importer.page-requests.v1"


def request_key(page_id: str) -> bytes:
    """The key of a page's request: the partition it goes to when spread is this key's."""
    return page_id.encode()


class PageRequestMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["PageRequested"] = "PageRequested"
    import_id: str
    account_id: str
    page_id: str
    parent_id: str | None = None
    resource: str
    created_gte: int | None = None
    created_lt: int | None = None
    cursor: str | None = None
    limit: int

    @classmethod
    def of(cls, account_id: str, page: PlannedPage) -> PageRequestMessage:
        return cls(
            import_id=page.import_id,
            account_id=account_id,
            page_id=page.page_id,
            parent_id=page.parent_id,
            resource=page.query.resource,
            created_gte=page.query.window.created_gte,
            created_lt=page.query.window.created_lt,
            cursor=page.query.cursor,
            limit=page.query.limit,
        )

    def key(self) -> bytes:
        return request_key(self.page_id)

    def page(self) -> PlannedPage:
        query = PageQuery(self.resource, Window(self.created_gte, self.created_lt), self.cursor, self.limit)
        return PlannedPage(self.page_id, self.import_id, query, self.parent_id)
