"""Use cases: send an import's email exactly once, and publish receipts nobody published yet."""
