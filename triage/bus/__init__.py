"""The bus: NATS JetStream declarations and publishing, size limits, how messages are settled,
the embedded server."""
