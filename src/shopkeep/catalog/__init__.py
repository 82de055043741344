"""shopkeep.catalog."""
