"""Request bodies of the Auth stand-in and the checks GoTrue applies to them.

Bodies are read with a size cap and validated with pydantic in strict mode, so a wrong JSON
type is refused as GoTrue's Go decoder refuses it: 400 `bad_json`. Unknown keys are ignored
(supabase-py sends `gotrue_meta_security`, `code_challenge`…). A JSON `null` body reads as `{}`,
as it does in Go.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from starlette.requests import Request

from app.local.auth.errors import AuthApiError, bad_request, weak_password

MAX_BODY_BYTES = 256 * 1024
MIN_PASSWORD_LENGTH = 6  # Supabase CLI default `minimum_password_length`
MAX_PASSWORD_BYTES = 72  # bcrypt's limit; GoTrue refuses longer passwords
MAX_EMAIL_LENGTH = 255

# checkmail.ValidateFormat, the check GoTrue runs on every email it is given.
_EMAIL = re.compile(
    r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$"
)
# Go's time.ParseDuration grammar (admin `ban_duration`).
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        """Go's decoder leaves a field at its zero value for a JSON `null` (supabase-py sends
        `"new_email": null`, `"data": null`…)."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class SignupBody(_Body):
    email: str = ""
    phone: str = ""
    password: str = ""
    data: dict[str, Any] | None = None
    code_challenge: str = ""
    code_challenge_method: str = ""


class PasswordGrantBody(_Body):
    email: str = ""
    phone: str = ""
    password: str = ""


class RefreshGrantBody(_Body):
    refresh_token: str = ""


class UserUpdateBody(_Body):
    code_challenge: str = ""
    code_challenge_method: str = ""
    email: str = ""
    phone: str = ""
    password: str | None = None
    nonce: str = ""
    data: dict[str, Any] | None = None
    app_metadata: dict[str, Any] | None = None


class _PkceFields(_Body):
    code_challenge: str = ""
    code_challenge_method: str = ""


class OtpBody(_PkceFields):
    email: str = ""
    phone: str = ""
    create_user: bool = True
    data: dict[str, Any] | None = None
    channel: str = ""


class VerifyBody(_Body):
    type: str = ""
    token: str = ""
    token_hash: str = ""
    email: str = ""
    phone: str = ""
    redirect_to: str = ""


class RecoverBody(_PkceFields):
    email: str = ""


class ResendBody(_PkceFields):
    type: str = ""
    email: str = ""
    phone: str = ""


class InviteBody(_Body):
    email: str = ""
    data: dict[str, Any] | None = None


class GenerateLinkBody(_Body):
    type: str = ""
    email: str = ""
    new_email: str = ""
    password: str = ""
    data: dict[str, Any] | None = None
    redirect_to: str = ""


class FactorBody(_Body):
    factor_type: str = ""
    friendly_name: str = ""
    issuer: str = ""
    phone: str = ""


class VerifyFactorBody(_Body):
    challenge_id: uuid.UUID = uuid.UUID(int=0)  # absent: Go's zero UUID, which no challenge has
    code: str = ""
    webauthn: dict[str, Any] | None = None  # {type, credential_response}: `mfa_webauthn`


class AdminFactorBody(_Body):
    friendly_name: str = ""
    phone: str = ""


class IdTokenBody(_Body):
    id_token: str = ""
    provider: str = ""
    client_id: str = ""
    issuer: str = ""


class PasskeyVerifyBody(_Body):
    """`/passkeys/{registration,authentication}/verify`: the credential is py_webauthn's to read."""

    challenge_id: str = ""
    credential: dict[str, Any] | None = None


class PasskeyRenameBody(_Body):
    friendly_name: str = ""


class PkceGrantBody(_Body):
    auth_code: str = ""
    code_verifier: str = ""


class AdminUserBody(_Body):
    id: str = ""
    aud: str = ""
    role: str = ""
    email: str = ""
    phone: str = ""
    password: str | None = None
    password_hash: str = ""
    email_confirm: bool = False
    phone_confirm: bool = False
    user_metadata: dict[str, Any] | None = None
    app_metadata: dict[str, Any] | None = None
    ban_duration: str = ""


class AdminDeleteBody(_Body):
    should_soft_delete: bool = False


BodyT = TypeVar("BodyT", bound=_Body)


async def read_body(request: Request) -> bytes:
    """The raw body, refused with 413 past MAX_BODY_BYTES without reading the rest."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_body(request: Request, model: type[BodyT], *, empty_ok: bool = False) -> BodyT:
    """Read and validate a JSON body; any malformation is 400 `bad_json` as in GoTrue."""
    return decode_body(await read_body(request), model, empty_ok=empty_ok)


def decode_body(raw: bytes, model: type[BodyT], *, empty_ok: bool = False) -> BodyT:
    """Validate an already-read body (see `parse_body`)."""
    stripped = raw.strip()
    if stripped == b"null" or (empty_ok and not stripped):
        return model()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise bad_request(
            "bad_json", f"Could not parse request body as JSON: {_describe(exc)}"
        ) from exc


def _describe(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def _too_large() -> AuthApiError:
    return AuthApiError(413, "request_too_large", "Request body too large")


def validate_email(email: str) -> str:
    """GoTrue's `validateEmail`: trimmed, at most 255 chars, checkmail format, lower-cased."""
    email = email.strip()
    if not email:
        raise bad_request("validation_failed", "An email address is required")
    if len(email) > MAX_EMAIL_LENGTH:
        raise bad_request("validation_failed", "An email address is too long")
    if not _EMAIL.match(email):
        raise bad_request("validation_failed", "Unable to validate email address: invalid format")
    return email.lower()


def check_password_length(password: str) -> None:
    """The bcrypt bound every path enforces (admin create included)."""
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise bad_request(
            "validation_failed", f"Password cannot be longer than {MAX_PASSWORD_BYTES} characters"
        )


def check_password_strength(password: str) -> None:
    """GoTrue's `checkPasswordStrength` with the CLI defaults (length only)."""
    check_password_length(password)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise weak_password(
            f"Password should be at least {MIN_PASSWORD_LENGTH} characters.", ["length"]
        )


def parse_ban_duration(text: str) -> dt.timedelta | None:
    """Go duration text -> timedelta; "none" -> None (lift the ban)."""
    if text == "none":
        return None
    sign, body = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
    if body == "0":
        return dt.timedelta(0)
    seconds, pos = 0.0, 0
    for match in _DURATION_PART.finditer(body):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not body or pos != len(body):
        raise bad_request(
            "validation_failed", f'invalid format for ban duration: time: invalid duration "{text}"'
        )
    return dt.timedelta(seconds=sign * seconds)


_E164 = re.compile(r"^[1-9]\d{1,14}$")


def validate_phone(phone: str) -> str:
    """GoTrue's validatePhone: `+` and spaces dropped, then E.164 digits (400 otherwise)."""
    formatted = phone.removeprefix("+").replace(" ", "")
    if not _E164.match(formatted):
        raise bad_request("validation_failed", "Invalid phone number format (E.164 required)")
    return formatted
