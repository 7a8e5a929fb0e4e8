"""The REST API (/api/v1) with its OpenAPI description; see docs/api.md."""
from callcenter.api.routes import setup

__all__ = ["setup"]
