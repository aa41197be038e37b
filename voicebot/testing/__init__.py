"""Protocol-faithful simulators of outside services (Twilio, OpenAI) and test helpers.

Shipped in the package so tests, load tests and the demo reuse the same peers.
"""
