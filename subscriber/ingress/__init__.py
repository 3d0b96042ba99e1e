"""Ingress: what the 5G core sends or answers, turned into normalized events on Kafka."""
