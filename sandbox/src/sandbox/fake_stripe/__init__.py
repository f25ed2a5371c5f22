"""Fake Stripe server (read API, Connect OAuth, rate limits, test control)."""

from sandbox.fake_stripe.app import STRIPE_API_VERSION, create_stripe_app
from sandbox.fake_stripe.errors import StripeError, mask_key
from sandbox.fake_stripe.state import StripeSandbox, default_stripe_accounts, default_stripe_keys

__all__ = [
    "STRIPE_API_VERSION",
    "StripeError",
    "StripeSandbox",
    "create_stripe_app",
    "default_stripe_accounts",
    "default_stripe_keys",
    "mask_key",
]
