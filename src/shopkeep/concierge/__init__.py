"""shopkeep.concierge."""
