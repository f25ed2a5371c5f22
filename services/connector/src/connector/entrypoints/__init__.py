"""Ways into the connector: HTTP routes, Kafka consumers and the key-rotation command."""
