"""Fixtures of these tests, from a helper module whose name no other test folder uses."""

from connector_integration_kit import *  # noqa: F403 - re-exports the fixtures for pytest to find
from connector_integration_kit import _no_faults_left_behind  # noqa: F401 - an autouse fixture
