"""Analytics nodes: alarms and scores computed from streams of points, emitted as events."""
