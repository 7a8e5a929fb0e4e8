"""The REST API (/api/v1) with its OpenAPI description; see docs/api.md."""
from callcenter.api.routes import rate_limit_middleware, setup

__all__ = ["rate_limit_middleware", "setup"]
