"""Adapters: the only modules that talk to servers (PostgreSQL, RabbitMQ, S3, SMTP)."""
