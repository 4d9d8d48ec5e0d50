"""Built-in sinks: `console`, `file`, `http` and `compass`."""
