"""shopkeep.explore."""
