"""Failures shared across the contract."""


class PermanentFailure(Exception):
    """A message that no retry can process: consumers send it to the dead-letter topic at once."""


class MalformedEvent(PermanentFailure, ValueError):
    """A message on an event topic that is not an event of this contract."""


class DependencyUnavailable(Exception):
    """A dependency (store, broker, mail server) cannot be reached for now: the message waits.

    Consumers treat it, and the connection errors of the drivers (see
    :func:`contracts.runtime.consumer.is_outage`), as an outage: they pause the message and try again with
    growing waits for as long as the outage lasts.
    """
