"""shopkeep.retrieval."""
