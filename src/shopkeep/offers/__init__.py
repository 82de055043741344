"""shopkeep.offers."""
