"""shopkeep.index."""
