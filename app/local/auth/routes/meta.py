"""What describes the service rather than a user: the JWKS, the OpenID configuration (GoTrue
serves it whether or not its OAuth server is on), `/settings` and `/health`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.local.auth.errors import json_response
from app.local.auth.issue import config_of
from app.local.context import StackContext

GOTRUE_VERSION = "v2.189.0"  # the version the Supabase CLI bundles


async def jwks(request: Request) -> Response:
    ctx: StackContext = request.app.state.ctx
    return json_response(ctx.keys.jwks(), headers={"Cache-Control": "public, max-age=600"})


async def openid_configuration(request: Request) -> Response:
    """GoTrue's `WellKnownOpenID` (v2.189: no `offline_access` scope, no registration endpoint
    while the OAuth server is off)."""
    ctx: StackContext = request.app.state.ctx
    issuer = ctx.jwt_issuer.rstrip("/")
    body = {
        "issuer": ctx.jwt_issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "userinfo_endpoint": f"{issuer}/oauth/userinfo",
        "scopes_supported": ["openid", "profile", "email", "phone"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "HS256", "ES256"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "claims_supported": [
            "sub",
            "aud",
            "iss",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "email",
            "email_verified",
            "phone_number",
            "phone_number_verified",
            "name",
            "picture",
            "preferred_username",
            "updated_at",
        ],
        "code_challenge_methods_supported": ["S256", "plain"],
    }
    oauth_server = config_of(request).oauth_server
    if oauth_server.enabled and oauth_server.allow_dynamic_registration:
        body["registration_endpoint"] = f"{issuer}/oauth/clients/register"
    return json_response(body, headers={"Cache-Control": "public, max-age=600"})


async def settings(request: Request) -> Response:
    """GoTrue's /settings, from the same config the handlers obey."""
    config = config_of(request)
    external = dict.fromkeys(
        (
            "anonymous_users",
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
            "keycloak",
            "kakao",
            "linkedin_oidc",
            "notion",
            "phone",
            "slack_oidc",
            "spotify",
            "twitch",
            "twitter",
            "workos",
            "zoom",
        ),
        False,
    ) | {"email": config.email.enable_signup, "anonymous_users": config.enable_anonymous_sign_ins}
    return json_response(
        {
            "external": external,
            "disable_signup": not config.enable_signup,
            "mailer_autoconfirm": not config.email.enable_confirmations,
            "phone_autoconfirm": False,
            "sms_provider": "twilio",
            "saml_enabled": False,
            "passkeys_enabled": config.passkey.enabled,
        }
    )


async def health(_: Request) -> Response:
    return json_response(
        {
            "version": GOTRUE_VERSION,
            "name": "GoTrue",
            "description": "GoTrue is a user registration and authentication API",
        }
    )
