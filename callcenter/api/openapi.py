"""The OpenAPI 3.1 description of /api/v1, built from the endpoint table (so it cannot drift from
the routes; tests/callcenter/api/test_openapi.py checks it against app.router too)."""
from __future__ import annotations

import re
from typing import Any

from agent_ui import access
from callcenter.api.routes import PREFIX, Endpoint

_PARAM = re.compile(r"{([^}]+)}")
ERROR = {"type": "object", "required": ["error"],
         "properties": {"error": {"type": "object", "required": ["code", "message"],
                                  "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}


def _operation(ep: Endpoint) -> dict[str, Any]:
    rule = access.HTTP[(ep.method, PREFIX + ep.path)]
    params: list[dict[str, Any]] = [
        {"name": n, "in": "path", "required": True,
         "schema": {"type": "integer"} if n == "id" or n.endswith("_id") else {"type": "string"}}
        for n in _PARAM.findall(ep.path)]
    required = {"q"} | ({"customer_id"} if ep.tag == "tickets" else set())
    params += [{"name": n, "in": "query", "required": n in required, "schema": {"type": "string"}}
               for n in ep.query]
    roles = sorted(rule.roles)
    op: dict[str, Any] = {
        "operationId": f"{ep.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', ep.path.lower()).strip('_')}",
        "summary": ep.summary, "tags": [ep.tag],
        "description": f"Roles: {', '.join(roles)}. Scope: {rule.scope}.",
        "x-roles": roles, "x-scope": rule.scope,
        "responses": {
            str(ep.status): {"description": "OK",
                             "content": {"application/json": {"schema": {"type": "object"}}}},
            "401": {"$ref": "#/components/responses/Error"},
            "403": {"$ref": "#/components/responses/Error"},
            "404": {"$ref": "#/components/responses/Error"},
        },
    }
    if params:
        op["parameters"] = params
    if ep.body is not None:
        media = ep.body.get("contentMediaType", "application/json")
        op["requestBody"] = {"required": True, "content": {media: {"schema": ep.body}}}
        op["responses"]["400"] = {"$ref": "#/components/responses/Error"}
    return op


def document(endpoints: tuple[Endpoint, ...]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {
        PREFIX + "/openapi.json": {"get": {
            "operationId": "get_openapi", "summary": "This description", "tags": ["meta"], "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1", "content": {
                "application/json": {"schema": {"type": "object"}}}}}}}}
    for ep in endpoints:
        paths.setdefault(PREFIX + ep.path, {})[ep.method.lower()] = _operation(ep)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Contact center API", "version": "1.0.0",
                 "description": "Customers, contact points, interactions (read), tickets, users, teams, "
                                "queues, skills, dispositions, reports, audit (read) and API tokens. "
                                "See docs/api.md."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "An API token (POST /api/v1/tokens); it carries one role."},
                "session": {"type": "apiKey", "in": "cookie", "name": "cc_session",
                            "description": "The web session; writes also need the X-CSRF-Token header."},
            },
            "responses": {"Error": {"description": "Refused", "content": {
                "application/json": {"schema": ERROR}}}},
        },
        "paths": paths,
    }
