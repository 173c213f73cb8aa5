"""User management (admin) and API tokens (every user, for their own automation)."""
