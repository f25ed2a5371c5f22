"""Use cases of the connector, one per module, called alike by HTTP routes and Kafka consumers."""
