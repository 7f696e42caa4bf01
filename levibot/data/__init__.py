"""Market data: sources, validation and the feature store."""
