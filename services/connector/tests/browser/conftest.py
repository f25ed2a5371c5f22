"""Fixtures of these tests, from a helper module whose name no other test folder uses."""

from onboarding_browser_kit import *  # noqa: F403 - re-exports the fixtures for pytest to find
