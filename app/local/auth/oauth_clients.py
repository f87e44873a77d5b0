"""The OAuth 2.1 server's clients (`auth.oauth_clients`): the checks, the SQL and the JSON.

As GoTrue v2.189's `oauthserver` package and `models.OAuthServerClient`: the row's `id` is the
public `client_id`; redirect URIs and grant types are stored comma-joined; a confidential client's
secret is 32 random bytes (base64url) of which only the SHA-256 is kept, so it is shown once, on
creation or regeneration. A client is soft-deleted (`deleted_at`) and then no longer found.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import uuid
from typing import Any, TypeVar
from urllib.parse import urlsplit

from psycopg import AsyncConnection, sql
from pydantic import BaseModel, ConfigDict, ValidationError

from app.local.auth import store
from app.local.auth.errors import AuthApiError, bad_request
from app.local.auth.users import rfc3339

PUBLIC = "public"
CONFIDENTIAL = "confidential"
NONE = "none"
SECRET_BASIC = "client_secret_basic"
SECRET_POST = "client_secret_post"
AUTH_METHODS = (NONE, SECRET_BASIC, SECRET_POST)
GRANT_TYPES = ("authorization_code", "refresh_token")
MAX_REDIRECT_URIS = 10
_DANGEROUS_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "about", "blob"})
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# Columns `update_client` may set; nothing else is ever composed into SQL.
_UPDATABLE = frozenset(
    {
        "redirect_uris",
        "grant_types",
        "client_name",
        "client_uri",
        "logo_uri",
        "token_endpoint_auth_method",
        "client_secret_hash",
    }
)


class JsonParams(BaseModel):
    """A JSON body decoded as Go's decoder would: strict types, unknown keys ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")


class RegisterParams(JsonParams):
    redirect_uris: list[str] | None = None
    client_type: str | None = None
    token_endpoint_auth_method: str | None = None
    grant_types: list[str] | None = None
    client_name: str | None = None
    client_uri: str | None = None
    logo_uri: str | None = None


class UpdateParams(JsonParams):
    """Only the keys present (and not null) change: Go's pointer fields."""

    redirect_uris: list[str] | None = None
    grant_types: list[str] | None = None
    client_name: str | None = None
    client_uri: str | None = None
    logo_uri: str | None = None
    token_endpoint_auth_method: str | None = None

    def is_empty(self) -> bool:
        return all(value is None for value in self.model_dump().values())


ParamsT = TypeVar("ParamsT", bound=JsonParams)


def decode_params(raw: bytes, model: type[ParamsT]) -> ParamsT:
    """GoTrue's oauthserver handlers answer any undecodable body with one message; `null`
    decodes to nothing set, as in Go."""
    if raw.strip() == b"null":
        return model()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise bad_request("bad_json", "Invalid JSON body") from exc


# --- checks (service.go) --------------------------------------------------------------------------
def _invalid(message: str) -> AuthApiError:
    return bad_request("validation_failed", message)


def check_redirect_uris(uris: list[str] | None, *, required: bool) -> list[str]:
    if required and not uris:
        raise _invalid("redirect_uris is required")
    if not uris:
        raise _invalid("redirect_uris cannot be empty")
    if len(uris) > MAX_REDIRECT_URIS:
        raise _invalid(f"redirect_uris cannot exceed {MAX_REDIRECT_URIS} items")
    for uri in uris:
        problem = redirect_uri_problem(uri)
        if problem:
            raise _invalid(f"invalid redirect_uri '{uri}': {problem}")
    return uris


def redirect_uri_problem(uri: str) -> str:
    """Why `uri` may not be a redirect URI (RFC 6749 §3.1.2, GoTrue's rules), or ""."""
    if not uri:
        return "redirect URI cannot be empty"
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
    except ValueError:
        return "invalid URL format"
    if not parts.scheme or not parts.netloc:
        return "must have scheme and host"
    if parts.scheme.lower() in _DANGEROUS_SCHEMES:
        return f"scheme '{parts.scheme}' is not allowed for security reasons"
    if parts.scheme == "http" and host not in _LOOPBACK:
        return "HTTP scheme only allowed for localhost"
    if parts.fragment:
        return "fragment not allowed in redirect URI"
    return ""


def check_grant_types(grant_types: list[str]) -> list[str]:
    if not grant_types:
        raise _invalid("grant_types cannot be empty")
    if any(g not in GRANT_TYPES for g in grant_types):
        raise _invalid("grant_types must only contain 'authorization_code' and/or 'refresh_token'")
    return grant_types


def _check_name(name: str) -> None:
    if len(name) > 1024:
        raise _invalid("client_name cannot exceed 1024 characters")


def _check_uri(field: str, value: str) -> None:
    """Go's `url.ParseRequestURI`: an absolute URI or an absolute path."""
    if not value:
        return
    if len(value) > 2048:
        raise _invalid(f"{field} cannot exceed 2048 characters")
    if not (value.startswith("/") or _SCHEME.match(value)) or any(c in value for c in " \x7f"):
        raise _invalid(f"{field} must be a valid URL")


def _go_list(values: tuple[str, ...]) -> str:
    return "[" + " ".join(values) + "]"


def check_register(params: RegisterParams) -> None:
    """`OAuthServerClientRegisterParams.validate`, in its order."""
    check_redirect_uris(params.redirect_uris, required=True)
    if params.grant_types:
        check_grant_types(params.grant_types)
    _check_name(params.client_name or "")
    _check_uri("client_uri", params.client_uri or "")
    _check_uri("logo_uri", params.logo_uri or "")
    client_type, method = params.client_type or "", params.token_endpoint_auth_method or ""
    if client_type and client_type not in (PUBLIC, CONFIDENTIAL):
        raise _invalid(f"client_type must be '{PUBLIC}' or '{CONFIDENTIAL}'")
    if method and method not in AUTH_METHODS:
        raise _invalid(f"token_endpoint_auth_method must be one of: {_go_list(AUTH_METHODS)}")
    if client_type and method and client_type != client_type_for(method):
        raise _invalid(
            f"client_type '{client_type}' is inconsistent with token_endpoint_auth_method "
            f"'{method}' (expected client_type '{client_type_for(method)}')"
        )


def check_update(params: UpdateParams) -> None:
    if params.redirect_uris is not None:
        check_redirect_uris(params.redirect_uris, required=False)
    if params.grant_types is not None:
        check_grant_types(params.grant_types)
    if params.client_name is not None:
        _check_name(params.client_name)
    if params.client_uri is not None:
        _check_uri("client_uri", params.client_uri)
    if params.logo_uri is not None:
        _check_uri("logo_uri", params.logo_uri)
    method = params.token_endpoint_auth_method
    if method is not None and method not in AUTH_METHODS:
        allowed = _go_list(AUTH_METHODS)
        raise _invalid(f"invalid token_endpoint_auth_method: must be one of {allowed}")


def client_type_for(method: str) -> str:
    return PUBLIC if method == NONE else CONFIDENTIAL


def methods_for(client_type: str) -> tuple[str, ...]:
    return (NONE,) if client_type == PUBLIC else (SECRET_BASIC, SECRET_POST)


# --- secrets --------------------------------------------------------------------------------------
def new_secret() -> tuple[str, str]:
    """A fresh client secret and the hash that is stored instead of it."""
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return secret, hash_secret(secret)


def hash_secret(secret: str) -> str:
    digest = hashlib.sha256(secret.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def secret_matches(secret: str, stored_hash: str | None) -> bool:
    return stored_hash is not None and hmac.compare_digest(hash_secret(secret), stored_hash)


# --- rows -----------------------------------------------------------------------------------------
async def insert_client(
    conn: AsyncConnection[Any], params: RegisterParams, *, registration_type: str
) -> tuple[store.Row, str]:
    """A new client from checked `params`, and its plaintext secret ("" for a public client)."""
    client_type = params.client_type or (
        client_type_for(params.token_endpoint_auth_method)
        if params.token_endpoint_auth_method
        else CONFIDENTIAL
    )
    method = params.token_endpoint_auth_method or (NONE if client_type == PUBLIC else SECRET_BASIC)
    secret, secret_hash = new_secret() if client_type == CONFIDENTIAL else ("", None)
    row = await store.fetch_one(
        conn,
        "insert into auth.oauth_clients (id, client_secret_hash, registration_type, redirect_uris,"
        " grant_types, client_name, client_uri, logo_uri, client_type, token_endpoint_auth_method)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) returning *",
        (
            uuid.uuid4(),
            secret_hash,
            registration_type,
            ",".join(params.redirect_uris or ()),
            ",".join(params.grant_types or GRANT_TYPES),
            params.client_name or None,
            params.client_uri or None,
            params.logo_uri or None,
            client_type,
            method,
        ),
    )
    assert row is not None
    return row, secret


async def find_client(conn: AsyncConnection[Any], client_id: uuid.UUID) -> store.Row | None:
    return await store.fetch_one(
        conn,
        "select * from auth.oauth_clients where id = %s and deleted_at is null",
        (client_id,),
    )


async def list_clients(conn: AsyncConnection[Any]) -> list[store.Row]:
    return await store.fetch_all(
        conn, "select * from auth.oauth_clients where deleted_at is null order by created_at desc"
    )


async def update_client(
    conn: AsyncConnection[Any], client_id: uuid.UUID, changes: dict[str, Any]
) -> store.Row | None:
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = %s").format(sql.Identifier(name)) for name in changes
    )
    query = sql.SQL(
        "update auth.oauth_clients set {}, updated_at = now()"
        " where id = %s and deleted_at is null returning *"
    ).format(assignments)
    return await store.fetch_one(conn, query, (*changes.values(), client_id))


async def soft_delete_client(conn: AsyncConnection[Any], client_id: uuid.UUID) -> None:
    await conn.execute(
        "update auth.oauth_clients set deleted_at = now(), updated_at = now() where id = %s",
        (client_id,),
    )


def update_changes(client: store.Row, params: UpdateParams) -> dict[str, Any]:
    """The columns a checked update sets, refusing a method the client's type cannot use."""
    changes: dict[str, Any] = {}
    if params.redirect_uris is not None:
        changes["redirect_uris"] = ",".join(params.redirect_uris)
    if params.grant_types is not None:
        changes["grant_types"] = ",".join(params.grant_types)
    for name in ("client_name", "client_uri", "logo_uri"):
        value = getattr(params, name)
        if value is not None:
            changes[name] = value or None
    method = params.token_endpoint_auth_method
    if method is not None:
        valid = methods_for(client["client_type"])
        if method not in valid:
            raise _invalid(
                f"token_endpoint_auth_method '{method}' is not valid for client_type "
                f"'{client['client_type']}'; valid methods: {_go_list(valid)}"
            )
        changes["token_endpoint_auth_method"] = method
    return changes


def split_list(value: str) -> list[str]:
    return value.split(",") if value else []


def client_json(row: store.Row, secret: str = "") -> dict[str, Any]:
    """GoTrue's `OAuthServerClientResponse`: empty strings and lists are left out."""
    body: dict[str, Any] = {"client_id": str(row["id"])}
    if secret:
        body["client_secret"] = secret
    body["client_type"] = row["client_type"]
    optional: dict[str, Any] = {
        "redirect_uris": split_list(row["redirect_uris"]),
        "token_endpoint_auth_method": row["token_endpoint_auth_method"],
        "grant_types": split_list(row["grant_types"]),
        "response_types": ["code"],
        "client_name": row["client_name"],
        "client_uri": row["client_uri"],
        "logo_uri": row["logo_uri"],
        "registration_type": row["registration_type"],
    }
    body |= {k: v for k, v in optional.items() if v}
    body["created_at"] = rfc3339(row["created_at"])
    body["updated_at"] = rfc3339(row["updated_at"])
    return body
