"""Errors the local stack raises when it cannot give what was asked for."""


class InfrastructureUnavailable(RuntimeError):
    """A broker or store cannot be had on this machine (nothing configured, no Docker, a tool missing).

    Outside CI, tests that need it are skipped with this message; in CI they fail.
    """


class ProcessNotReady(RuntimeError):
    """A process exited or did not become ready in time; the message ends with the tail of its log."""
