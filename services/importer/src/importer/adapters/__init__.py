"""Adapters: processor sources, the MongoDB store, the Kafka publisher."""
