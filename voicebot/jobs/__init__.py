"""Background work on Dramatiq: campaign dialing (pacing, retries, calling hours, do-not-call)."""
