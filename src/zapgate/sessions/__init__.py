"""Sessions: the pure per-session state machine, pacing policy and the session manager."""
