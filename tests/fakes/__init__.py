"""Real loopback servers that stand in for third-party APIs in tests."""
