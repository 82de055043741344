"""shopkeep.cli."""
