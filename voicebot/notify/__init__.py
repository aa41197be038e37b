"""Messages to leads outside calls: the SMS meeting confirmation."""
