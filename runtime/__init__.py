"""The generic edge runtime: receives plans and interprets them node by node."""
