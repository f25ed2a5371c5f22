"""Shared test helpers of the workspace-level tests.

The local stack's fixtures (``kafka_bootstrap``, ``mongodb_url``, ``smtp_catcher``, ``mailbox``,
``mongodb_database``, ``mongo_db``, ``stack_settings``, ``service_env``, ``run_services``,
``kafka_events``, ``sandbox_processors``) come from ``devstack.pytest_plugin``, which the ``devstack``
package registers with pytest for every test directory of the workspace.
"""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def account_id() -> str:
    """An account id no other test uses, so tests sharing the broker and store never see each other."""
    return f"acct_test_{uuid.uuid4().hex[:12]}"
