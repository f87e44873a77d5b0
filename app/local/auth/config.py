"""The Auth stand-in's settings, read from the `[auth*]` sections of `supabase/config.toml`.

The same file the Supabase CLI reads, with the CLI's defaults for every key that is absent, so
a project behaves alike under `supabase start` and under `chat-stream dev`. The stand-in reads it
once per app (`create_app`); a caller may put its own `AuthConfig` in `ctx.extra[CONFIG_KEY]`
(tests do, to turn rate limits off on the shared stack or to switch a flag on).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_KEY = "auth_config"
CONFIG_PATH = Path(__file__).resolve().parents[3] / "supabase" / "config.toml"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


@dataclass(frozen=True)
class RateLimits:
    """`[auth.rate_limit]`: GoTrue's per-IP buckets (and the project-wide email budget).

    The per-address buckets apply only with `header` (`[auth.rate_limit] header`, a stand-in key
    for GoTrue's `GOTRUE_RATE_LIMIT_HEADER`), keyed on its first value; the email budget always.
    `enabled=False` turns every bucket off (the shared test stack: hundreds of sign-ups from
    127.0.0.1 in one run).
    """

    email_sent: int = 2  # per hour, for the whole project
    anonymous_users: int = 30  # per hour per IP
    token_refresh: int = 150  # per 5 minutes per IP, burst 30 (every /token grant)
    sign_in_sign_ups: int = 30  # per 5 minutes per IP, burst 30 (signup, otp, recover, resend…)
    token_verifications: int = 30  # per 5 minutes per IP, burst 30 (/verify)
    web3: int = 30
    enabled: bool = True
    # GOTRUE_RATE_LIMIT_HEADER: the header that carries the client address. Empty (as in the
    # CLI's stack, which sets none): GoTrue applies no per-address limit at all.
    header: str = ""


@dataclass(frozen=True)
class EmailConfig:
    """`[auth.email]`."""

    enable_signup: bool = True
    enable_confirmations: bool = False
    double_confirm_changes: bool = True
    secure_password_change: bool = False
    max_frequency_seconds: float = 1.0  # per user, between two mails of one kind
    otp_length: int = 6
    otp_expiry: int = 3600  # seconds; links and codes alike


@dataclass(frozen=True)
class FactorSwitches:
    """`[auth.mfa.totp]`, `[auth.mfa.web_authn]`, `[auth.mfa.phone]`: off in the CLI's template."""

    enroll_enabled: bool = False
    verify_enabled: bool = False


@dataclass(frozen=True)
class MfaConfig:
    """`[auth.mfa]`. The expiries are GoTrue's defaults (`GOTRUE_MFA_*_EXPIRY_DURATION`), which
    the CLI does not set."""

    max_enrolled_factors: int = 10
    max_verified_factors: int = 10
    challenge_expiry_seconds: int = 300
    factor_expiry_seconds: int = 300
    totp: FactorSwitches = field(default_factory=FactorSwitches)
    web_authn: FactorSwitches = field(default_factory=FactorSwitches)
    phone: FactorSwitches = field(default_factory=FactorSwitches)


@dataclass(frozen=True)
class PasskeyConfig:
    """`[auth.passkey]`: passkey sign-in (GoTrue's `GOTRUE_PASSKEY_*`), off as in the CLI."""

    enabled: bool = False
    max_passkeys_per_user: int = 10


@dataclass(frozen=True)
class WebAuthnConfig:
    """`[auth.webauthn]`: the relying party that passkeys and WebAuthn factors are bound to."""

    rp_display_name: str = ""
    rp_id: str = ""
    rp_origins: tuple[str, ...] = ()
    challenge_expiry_seconds: float = 300.0  # GoTrue's challenge_expiry_duration, 5m

    def missing(self) -> str | None:
        """The first key GoTrue requires once anything WebAuthn is on (it will not start
        without it), or None."""
        for key, value in (
            ("rp_id", self.rp_id),
            ("rp_display_name", self.rp_display_name),
            ("rp_origins", self.rp_origins),
        ):
            if not value:
                return key
        return None


@dataclass(frozen=True)
class OAuthServerConfig:
    """`[auth.oauth_server]`: GoTrue as an OAuth 2.1 provider (the CLI's defaults: all off).

    `authorization_url_path` is where `/oauth/authorize` sends the user, joined to `site_url`
    (GoTrue's `GOTRUE_OAUTH_SERVER_AUTHORIZATION_PATH`): the project's own consent page.
    """

    enabled: bool = False
    authorization_url_path: str = "/oauth/consent"
    allow_dynamic_registration: bool = False


@dataclass(frozen=True)
class AuthConfig:
    """`[auth]`, with its `email`, `rate_limit`, `mfa` and `oauth_server` sections."""

    site_url: str = "http://127.0.0.1:3000"
    additional_redirect_urls: tuple[str, ...] = ()
    jwt_expiry: int = 3600
    enable_refresh_token_rotation: bool = True
    refresh_token_reuse_interval: int = 10
    enable_signup: bool = True
    enable_anonymous_sign_ins: bool = False
    enable_manual_linking: bool = False
    minimum_password_length: int = 6
    email: EmailConfig = field(default_factory=EmailConfig)
    rate_limit: RateLimits = field(default_factory=RateLimits)
    mfa: MfaConfig = field(default_factory=MfaConfig)
    passkey: PasskeyConfig = field(default_factory=PasskeyConfig)
    webauthn: WebAuthnConfig = field(default_factory=WebAuthnConfig)
    oauth_server: OAuthServerConfig = field(default_factory=OAuthServerConfig)

    def replace(self, **changes: Any) -> AuthConfig:
        return dataclasses.replace(self, **changes)

    def without_rate_limits(self) -> AuthConfig:
        return self.replace(rate_limit=dataclasses.replace(self.rate_limit, enabled=False))


def load_auth_config(path: Path = CONFIG_PATH) -> AuthConfig:
    """The `[auth*]` settings of `path`; the CLI's defaults where a key (or the file) is absent."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return AuthConfig()
    return parse_auth_config(data)


def parse_auth_config(data: dict[str, Any]) -> AuthConfig:
    auth: dict[str, Any] = dict(data.get("auth") or {})
    email_section: dict[str, Any] = dict(auth.pop("email", None) or {})
    limits_section: dict[str, Any] = dict(auth.pop("rate_limit", None) or {})
    mfa_section: dict[str, Any] = dict(auth.pop("mfa", None) or {})
    oauth_section: dict[str, Any] = dict(auth.pop("oauth_server", None) or {})
    email_values = _known(EmailConfig, email_section)
    if "max_frequency" in email_section:
        email_values["max_frequency_seconds"] = _seconds(str(email_section["max_frequency"]))
    passkey_section: dict[str, Any] = dict(auth.pop("passkey", None) or {})
    webauthn_section: dict[str, Any] = dict(auth.pop("webauthn", None) or {})
    webauthn_values = _known(WebAuthnConfig, webauthn_section)
    webauthn_values["rp_origins"] = tuple(webauthn_values.get("rp_origins") or ())
    values = _known(AuthConfig, auth)
    if "additional_redirect_urls" in values:
        values["additional_redirect_urls"] = tuple(values["additional_redirect_urls"])
    passkey = PasskeyConfig(**_known(PasskeyConfig, passkey_section))
    webauthn = WebAuthnConfig(**webauthn_values)
    mfa = _mfa_config(mfa_section)
    webauthn_on = passkey.enabled or mfa.web_authn.enroll_enabled or mfa.web_authn.verify_enabled
    if webauthn_on and (missing := webauthn.missing()):
        raise ValueError(
            f"[auth.webauthn] {missing} is required when [auth.passkey] or"
            " [auth.mfa.web_authn] is enabled"
        )
    return AuthConfig(
        **values,
        email=EmailConfig(**email_values),
        rate_limit=RateLimits(**_known(RateLimits, limits_section)),
        passkey=passkey,
        webauthn=webauthn,
        mfa=mfa,
        oauth_server=OAuthServerConfig(**_known(OAuthServerConfig, oauth_section)),
    )


def _mfa_config(section: dict[str, Any]) -> MfaConfig:
    def switches(kind: str) -> FactorSwitches:
        return FactorSwitches(**_known(FactorSwitches, dict(section.get(kind) or {})))

    return MfaConfig(
        max_enrolled_factors=int(section.get("max_enrolled_factors", 10)),
        totp=switches("totp"),
        web_authn=switches("web_authn"),
        phone=switches("phone"),
    )


def _known(cls: type, section: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)} - {
        "email",
        "rate_limit",
        "passkey",
        "webauthn",
    }
    return {k: v for k, v in section.items() if k in names}


def _seconds(text: str) -> float:
    """`"1s"`, `"60s"`, `"1m"`, `"500ms"` (the CLI's duration strings) -> seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
