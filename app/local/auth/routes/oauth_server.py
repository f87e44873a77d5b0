"""GoTrue v2.189 as an OAuth 2.1 provider (`[auth.oauth_server] enabled`): client registration
(`oauth_admin`), the user's authorization and consent (`oauth_flow`), the client's token and
userinfo endpoints (`oauth_token`), and the authorization server metadata (RFC 8414), which is
GoTrue's OpenID configuration."""

from __future__ import annotations

from starlette.routing import Route

from app.local.auth.routes import meta
from app.local.auth.routes.oauth_admin import oauth_admin_routes
from app.local.auth.routes.oauth_flow import oauth_flow_routes
from app.local.auth.routes.oauth_token import oauth_token_routes


def oauth_server_routes() -> list[Route]:
    """Every route of the OAuth server; they replace the gated 404s when it is on."""
    return [
        Route(
            "/.well-known/oauth-authorization-server", meta.openid_configuration, methods=["GET"]
        ),
        *oauth_admin_routes(),
        *oauth_flow_routes(),
        *oauth_token_routes(),
    ]
