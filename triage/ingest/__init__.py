"""Ingest: Alertmanager webhooks received, bounded, validated and put on the bus."""
