"""triage: Alertmanager webhooks in, cited root-cause drafts out."""

__version__ = "0.1.0"
