"""What the emails say and the rules of sending each one exactly once: pure, no I/O, no framework."""
