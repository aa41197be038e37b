"""REST API under /api/v1, health probes and metrics: the HTTP edge of voicebot."""
