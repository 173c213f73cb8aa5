"""The flows domain: documents with immutable versions, diff, rollback, import/export, validate/compile."""

from backend.flows.controllers import FlowController

CONTROLLERS = [FlowController]
