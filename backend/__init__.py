"""The Hub: a Litestar application (API, auth, compile, deploy, historian writer, alerting)."""
