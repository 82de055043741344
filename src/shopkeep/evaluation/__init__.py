"""shopkeep.evaluation."""
