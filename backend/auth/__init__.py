"""Sign-in, sessions, CSRF, API tokens, roles."""
