"""Infrastructure layer: storage backends, the SQLite catalog."""
