"""shopkeep.events."""
