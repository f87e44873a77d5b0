"""What describes the service rather than a user: the JWKS, `/settings` and `/health`."""

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
