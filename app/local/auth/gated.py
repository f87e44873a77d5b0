"""GoTrue 2.189's answers for the feature-gated routes the local stack leaves off (its defaults,
and the CLI's template): the OAuth 2.1 server and custom OAuth/OIDC providers (passkeys, gated by
`[auth.passkey]`, are in `routes.passkeys`).

Each answers JSON 404 `feature_disabled` ("OAuth server is disabled", "Custom OAuth providers
are disabled"), after the checks GoTrue's router runs first: admin credentials for `/admin/…`,
a signed-in user for `/user/oauth/grants`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.local.auth import store
from app.local.auth.errors import not_found
from app.local.auth.guard import authenticate, require_admin
from app.local.auth.issue import ctx_of

OAUTH_SERVER_OFF = "OAuth server is disabled"


async def oauth_server(_: Request) -> Response:
    raise not_found("feature_disabled", OAUTH_SERVER_OFF)


async def user_oauth_grants(request: Request) -> Response:
    async with store.read(ctx_of(request)) as conn:
        await authenticate(request, ctx_of(request).keys, conn)
    raise not_found("feature_disabled", OAUTH_SERVER_OFF)


async def admin_oauth_clients(request: Request) -> Response:
    require_admin(request, ctx_of(request).keys)
    raise not_found("feature_disabled", OAUTH_SERVER_OFF)


async def admin_custom_providers(request: Request) -> Response:
    require_admin(request, ctx_of(request).keys)
    raise not_found("feature_disabled", "Custom OAuth providers are disabled")


def gated_routes() -> list[Route]:
    crud = ["GET", "POST", "PUT", "DELETE"]
    return [
        Route("/.well-known/oauth-authorization-server", oauth_server, methods=["GET"]),
        Route("/oauth/clients/register", oauth_server, methods=["POST"]),
        Route("/oauth/token", oauth_server, methods=["POST"]),
        Route("/oauth/userinfo", oauth_server, methods=["GET"]),
        Route("/oauth/authorize", oauth_server, methods=["GET"]),
        Route("/oauth/authorizations/{authorization_id}", oauth_server, methods=["GET"]),
        Route("/oauth/authorizations/{authorization_id}/consent", oauth_server, methods=["POST"]),
        Route("/user/oauth/grants", user_oauth_grants, methods=["GET", "DELETE"]),
        Route("/admin/oauth/clients", admin_oauth_clients, methods=["GET", "POST"]),
        Route("/admin/oauth/clients/{client_id}", admin_oauth_clients, methods=crud),
        Route(
            "/admin/oauth/clients/{client_id}/regenerate_secret",
            admin_oauth_clients,
            methods=["POST"],
        ),
        Route("/admin/custom-providers", admin_custom_providers, methods=["GET", "POST"]),
        Route("/admin/custom-providers/{identifier}", admin_custom_providers, methods=crud),
    ]
