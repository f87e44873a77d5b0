"""Supabase Auth (GoTrue) stand-in, mounted at `/auth/v1` behind the apikey gateway.

Routes, bodies, statuses and error shapes follow GoTrue's (supabase/auth) handlers and what
supabase-py's auth client sends and expects: signup (autoconfirm, or a confirmation mail with
`enable_confirmations`; anonymous when no credentials), the password, refresh-token (with the reuse
interval), PKCE, id_token and web3 grants, `/user`, `/logout`, JWKS, `/settings`, `/health`, the
admin API (`admin`), MFA factors (`routes.mfa`), the email flows (`flows`, `verify`, `links`)
and GoTrue's default-config "disabled" answers (`disabled`). Settings come from
`supabase/config.toml` (`config`); per-IP rate limits (`ratelimit`) and a body cap on every
route (`bodycap`) guard it. Users, identities, sessions, refresh tokens, PKCE flow state and MFA
factors live in the `auth` tables (`store`, `sessions`, `factors`); mails go to
the local sink (`mail`). Passwords are bcrypt hashes computed off the event loop. Every request that
writes runs in one transaction.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from app.local.auth import flows
from app.local.auth.admin import admin_routes
from app.local.auth.bodycap import BodyCap
from app.local.auth.config import CONFIG_KEY, AuthConfig, load_auth_config
from app.local.auth.disabled import disabled_routes
from app.local.auth.errors import EXCEPTION_HANDLERS
from app.local.auth.gated import gated_routes
from app.local.auth.links import generate_link
from app.local.auth.ratelimit import RateLimiter
from app.local.auth.routes import meta, signup, token, user
from app.local.auth.routes.mfa import mfa_routes
from app.local.auth.routes.oauth_server import oauth_server_routes
from app.local.auth.routes.passkeys import passkey_routes
from app.local.auth.verify import verify_endpoint
from app.local.context import StackContext


def create_app(ctx: StackContext) -> Starlette:
    config: AuthConfig = ctx.extra.get(CONFIG_KEY) or load_auth_config()
    oauth = oauth_server_routes() if config.oauth_server.enabled else []
    oauth_paths = {r.path for r in oauth}
    app = Starlette(
        middleware=[Middleware(BodyCap)],
        routes=[
            Route("/signup", signup.signup, methods=["POST"]),
            Route("/token", token.token, methods=["POST"]),
            Route("/user", user.user_endpoint, methods=["GET", "PUT"]),
            Route("/logout", user.logout, methods=["POST"]),
            Route("/.well-known/jwks.json", meta.jwks, methods=["GET"]),
            Route("/.well-known/openid-configuration", meta.openid_configuration, methods=["GET"]),
            Route("/settings", meta.settings, methods=["GET"]),
            Route("/health", meta.health, methods=["GET"]),
            Route("/otp", flows.otp_endpoint, methods=["POST"]),
            Route("/magiclink", flows.magiclink_endpoint, methods=["POST"]),
            Route("/verify", verify_endpoint, methods=["GET", "POST"]),
            Route("/recover", flows.recover_endpoint, methods=["POST"]),
            Route("/resend", flows.resend_endpoint, methods=["POST"]),
            Route("/reauthenticate", flows.reauthenticate_endpoint, methods=["GET"]),
            Route("/invite", flows.invite_endpoint, methods=["POST"]),
            Route("/admin/generate_link", generate_link, methods=["POST"]),
            *disabled_routes(),
            *oauth,
            *(r for r in gated_routes() if r.path not in oauth_paths),
            *admin_routes(),
            *mfa_routes(),
            *passkey_routes(),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.ctx = ctx
    app.state.config = config
    app.state.limiter = RateLimiter(config.rate_limit)
    return app
