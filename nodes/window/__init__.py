"""Window nodes: aggregate points over time windows (tumbling and sliding)."""
