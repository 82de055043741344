"""shopkeep.serving."""
