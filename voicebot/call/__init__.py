"""One live call: session, turn loop, playout and barge-in."""
