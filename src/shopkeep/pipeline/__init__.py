"""shopkeep.pipeline."""
