"""shopkeep.storage."""
