"""Faststream subscribers and HTTP routes: parse, delegate, nothing else."""
