"""shopkeep.policy."""
