"""Built-in processors: `labels` and `enrich`."""
