"""GoTrue v2.189 as an OAuth 2.1 provider (`[auth.oauth_server] enabled`)."""

from __future__ import annotations

from starlette.routing import Route

from app.local.auth.routes.oauth_admin import oauth_admin_routes


def oauth_server_routes() -> list[Route]:
    """Every route of the OAuth server; they replace the gated 404s when it is on."""
    return [*oauth_admin_routes()]
