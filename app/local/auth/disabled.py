"""What a default-config GoTrue answers for the features the local stack leaves off.

SAML SSO, manual identity linking (`enable_manual_linking = false`), OAuth and OIDC providers,
web3 (MFA answers its own switches, `routes.mfa`). Same status, `error_code` and message as
GoTrue (middleware.go, admin.go, token_oidc.go, web3.go, external.go), after the same checks in
the same order (a session first where GoTrue's route requires one).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.local.auth import store
from app.local.auth.errors import (
    AuthApiError,
    OAuthError,
    bad_request,
    not_found,
    unprocessable,
)
from app.local.auth.guard import authenticate
from app.local.auth.issue import ctx_of
from app.local.auth.params import IdTokenBody, parse_body

# GoTrue's built-in OIDC providers and the issuer each one names when it is off.
_OIDC_ISSUERS = {
    "google": "https://accounts.google.com",
    "apple": "https://appleid.apple.com",
    "azure": "https://login.microsoftonline.com/common/v2.0",
    "facebook": "https://www.facebook.com",
    "kakao": "https://kauth.kakao.com",
    "snapchat": "https://accounts.snapchat.com",
    "keycloak": "",
}
OAUTH_PROVIDERS = frozenset(
    {
        "apple",
        "azure",
        "bitbucket",
        "discord",
        "facebook",
        "figma",
        "fly",
        "github",
        "gitlab",
        "google",
        "kakao",
        "keycloak",
        "linkedin",
        "linkedin_oidc",
        "notion",
        "slack",
        "slack_oidc",
        "snapchat",
        "spotify",
        "twitch",
        "twitter",
        "x",
        "workos",
        "zoom",
    }
)


def _saml_disabled() -> AuthApiError:
    return not_found("saml_provider_disabled", "SAML 2.0 is disabled")


async def sso(_: Request) -> Response:
    raise _saml_disabled()


async def identities(request: Request) -> Response:
    """/user/identities/*: a session first (the /user group), then the linking switch."""
    ctx = ctx_of(request)
    async with store.read(ctx) as conn:
        await authenticate(request, ctx.keys, conn)
    raise not_found("manual_linking_disabled", "Manual linking is disabled")


async def authorize(request: Request) -> Response:
    """GET /authorize (open, no apikey): every OAuth provider is off locally."""
    provider = request.query_params.get("provider", "").lower()
    reason = (
        "provider is not enabled"
        if provider in OAUTH_PROVIDERS
        else f"Provider {provider} could not be found"
    )
    raise bad_request("validation_failed", f"Unsupported provider: {reason}")


async def callback(request: Request) -> Response:
    """GET/POST /callback (open): no OAuth flow was ever started, so no state can match."""
    if not request.query_params.get("state"):
        raise bad_request("bad_oauth_callback", "OAuth state parameter missing")
    raise bad_request("bad_oauth_state", "OAuth state parameter is invalid")


async def id_token_grant(request: Request) -> Response:
    body = await parse_body(request, IdTokenBody)
    if not body.id_token:
        raise OAuthError("invalid request", "id_token required")
    if not body.provider and not (body.client_id and body.issuer):
        raise OAuthError("invalid request", "provider or client_id and issuer required")
    if body.provider in _OIDC_ISSUERS:
        issuer = _OIDC_ISSUERS[body.provider]
        raise bad_request("provider_disabled", f'Provider (issuer "{issuer}") is not enabled')
    raise bad_request("validation_failed", f'Custom OIDC provider "{body.provider}" not allowed')


async def web3_grant(_: Request) -> Response:
    raise unprocessable("web3_provider_disabled", "Web3 provider is disabled")


def disabled_routes() -> list[Route]:
    return [
        Route("/sso", sso, methods=["POST"]),
        Route("/sso/saml/metadata", sso, methods=["GET"]),
        Route("/sso/saml/acs", sso, methods=["POST"]),
        Route("/user/identities/authorize", identities, methods=["GET"]),
        Route("/user/identities/{identity_id}", identities, methods=["DELETE"]),
        Route("/authorize", authorize, methods=["GET"]),
        Route("/callback", callback, methods=["GET", "POST"]),
    ]
