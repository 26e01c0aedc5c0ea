"""Incidents: alert groups turned into incidents and their state in the KV bucket."""
