"""The runtime every service shares: settings, logs, traces, Kafka wiring, dead letters, health.

It lives beside the event models because the services share only ``contracts``; it holds no business
rule of any service.
"""
