"""The node catalog as the editor consumes it."""

from backend.catalog.controllers import CatalogController

CONTROLLERS = [CatalogController]
