"""Signed outbound webhooks: events recorded with the change that caused them, delivered
with exponential backoff, logged, listed and replayable (issue #13)."""
