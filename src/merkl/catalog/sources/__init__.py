"""Built-in sources: `merlin`."""
