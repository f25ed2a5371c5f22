"""Real adapters behind the domain's ports: SMTP, the MongoDB ledger, Kafka receipts, Jinja templates."""
