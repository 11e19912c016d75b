"""Kafka: the clients and their settings, topics, reading ranges, and the embedded broker."""
