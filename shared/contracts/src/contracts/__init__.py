"""Public contract of the billing import system: topics, events and canonical records."""
