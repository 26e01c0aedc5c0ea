"""Deliver: drafts routed to their owners and handed to every sink (Slack, JSONL, console,
webhook); feedback from Slack's buttons."""
