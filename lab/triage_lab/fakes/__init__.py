"""One fake per external system: the Kubernetes API, Prometheus, Alertmanager, NATS, Slack,
the LLM gateway."""
