"""shopkeep.features."""
