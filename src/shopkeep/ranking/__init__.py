"""shopkeep.ranking."""
