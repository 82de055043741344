"""shopkeep.models."""
