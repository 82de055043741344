"""shopkeep.profiles."""
