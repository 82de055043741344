"""shopkeep.simulate."""
