"""shopkeep.search."""
