"""Fake Chargebee server (API v2 lists, sites and keys, rate limits, test control)."""

from sandbox.fake_chargebee.app import create_chargebee_app
from sandbox.fake_chargebee.errors import ChargebeeError
from sandbox.fake_chargebee.state import ChargebeeSandbox, default_chargebee_sites

__all__ = ["ChargebeeError", "ChargebeeSandbox", "create_chargebee_app", "default_chargebee_sites"]
