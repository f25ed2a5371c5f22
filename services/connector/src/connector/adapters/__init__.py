"""Implementations of the domain's ports: MongoDB, Stripe, Chargebee, Kafka and sealed boxes."""
