"""Failures shared across the contract."""


class PermanentFailure(Exception):
    """A message that no retry can process: consumers send it to the dead-letter topic at once."""


class MalformedEvent(PermanentFailure, ValueError):
    """A message on an event topic that is not an event of this contract."""
