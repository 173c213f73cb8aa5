"""Device simulators for trying out flows without real machines (``proxus simulate ...``)."""
