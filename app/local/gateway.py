"""The `apikey` handling of Supabase's API gateway, as ASGI middleware.

The key comes from the `apikey` header, else the `?apikey=` query parameter. Missing or unknown →
401 with the gateway's JSON; a secret key (`sb_secret_…`) sent by a browser (a `Mozilla/`
User-Agent) → 401, as hosted Supabase refuses it. Otherwise the request goes on with
`Authorization` set as the local CLI's Kong does (`internal/start/start.go`, `BearerToken` and
`QueryToken`; a key sent as `?apikey=` is taken out of the query string): the caller's own
Authorization unless it is `Bearer sb_…` (dropped, never forwarded); else `Bearer <jwt>` for an
`sb_` key (the secret key → the service_role JWT, the publishable key → the anon JWT); else —
`forward_legacy_key_as_is` — the legacy JWT `apikey` value itself, with no `Bearer ` (so GoTrue
answers "This endpoint requires a valid Bearer token" where it wants a user).

A legacy key need not be the stack's own string: any JWT signed by one of the stack's keys with
role `anon` or `service_role` (`minted_key`, from `signed_api_key`) stands for itself. The CLI's
Kong forwards every `apikey` unchecked, so clients that mint their keys from the project's
signing key work there (auth-js's suite does); here they work too, and a junk or foreign-signed
key is still 401.

`passthrough_prefixes` are Kong's open services (`/verify`, `/callback`, `/authorize`): no key
is checked and no header is touched. `open_paths` need no key but get one handled when sent.
With `key_required=False` (`/auth/v1`, as the CLI's Kong has no key-auth there) every path is
open that way: a request without a key reaches GoTrue as sent, and GoTrue judges its
Authorization; a key that is sent must still be a valid one. Hosted Supabase refuses a keyless
request at the gateway (design §8 records the difference).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import parse_qs, parse_qsl, urlencode

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from app.local.keys import ANON_ROLE, SERVICE_ROLE, InvalidToken, LocalKeys

NO_KEY = {
    "message": "No API key found in request",
    "hint": "No `apikey` request header or url param was found.",
}
BAD_KEY = {
    "message": "Invalid API key",
    "hint": "Double check your Supabase `anon` or `service_role` API key.",
}
# The stand-in's wording: hosted Supabase answers 401 here, its body is not pinned down.
SECRET_IN_BROWSER = {
    "message": "Forbidden use of secret API key in browser",
    "hint": "Secret API keys can only be used in a protected environment and should never be "
    "used in a browser. Use the publishable key there.",
}


class ApiKeyGateway:
    def __init__(
        self,
        app: ASGIApp,
        *,
        key_to_jwt: Callable[[], dict[str, str]],
        secret_keys: Callable[[], frozenset[str]] = frozenset,
        open_paths: Iterable[str] = (),
        passthrough_prefixes: Iterable[str] = (),
        forward_legacy_key_as_is: bool = False,
        minted_key: Callable[[str], bool] = lambda _: False,
        key_required: bool = True,
    ) -> None:
        self.app = app
        self.key_to_jwt = key_to_jwt  # apikey value -> Bearer JWT for that role
        self.secret_keys = secret_keys  # the keys a browser may not send
        self.open_paths = tuple(open_paths)
        self.passthrough = tuple(passthrough_prefixes)
        self.forward_legacy_key_as_is = forward_legacy_key_as_is
        self.minted_key = minted_key  # a legacy JWT key signed by the stack, not its own string
        self.key_required = key_required

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if self._passes_through(scope):
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"]]
        apikey = _header(headers, b"apikey") or _query_param(scope, "apikey")
        if not apikey and (not self.key_required or path.endswith(self.open_paths)):
            await self.app(scope, receive, send)
            return
        if not apikey:
            await _reject(send, NO_KEY)
            return
        mapping = self.key_to_jwt()
        if apikey not in mapping:
            if not self.minted_key(apikey):
                await _reject(send, BAD_KEY)
                return
            mapping = {apikey: apikey}
        if apikey in self.secret_keys() and _from_browser(headers):
            await _reject(send, SECRET_IN_BROWSER)
            return
        auth = _header(headers, b"authorization")
        if not auth or auth.lower().startswith("bearer sb_"):
            headers = [(k, v) for k, v in headers if k != b"authorization"]
            legacy = mapping[apikey] == apikey  # a legacy JWT key stands for itself
            value = (
                apikey if legacy and self.forward_legacy_key_as_is else f"Bearer {mapping[apikey]}"
            )
            headers.append((b"authorization", value.encode()))
        scope = dict(scope, headers=headers)
        if not _header(headers, b"apikey"):
            scope["query_string"] = _without_apikey(scope.get("query_string", b""))
        await self.app(scope, receive, send)

    def _passes_through(self, scope: Scope) -> bool:
        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "")
        relative = path[len(root) :] if root and path.startswith(root) else path
        return any(relative == p or relative.startswith(p + "/") for p in self.passthrough)


def signed_api_key(keys: Callable[[], LocalKeys]) -> Callable[[str], bool]:
    """Whether a value is a legacy API key signed by the stack's keys: a JWT that `keys()`
    verifies (any key of the set, or HS256 over the legacy secret) with role anon/service_role."""

    def check(value: str) -> bool:
        if value.startswith("sb_") or value.count(".") != 2:
            return False
        try:
            claims = keys().verify(value)
        except InvalidToken:
            return False
        return claims.get("role") in (ANON_ROLE, SERVICE_ROLE)

    return check


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for k, v in headers:
        if k.lower() == name:
            return v.decode("latin-1")
    return None


def _without_apikey(query: bytes) -> bytes:
    """The query string minus `apikey`, as Kong's key-auth (`hide_credentials`) forwards it: a
    PostgREST behind it would read `apikey=…` as a column filter."""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    return urlencode([(k, v) for k, v in pairs if k != "apikey"]).encode("latin-1")


def _from_browser(headers: list[tuple[bytes, bytes]]) -> bool:
    """Every browser's User-Agent starts `Mozilla/`; servers' clients (node, python) do not."""
    return (_header(headers, b"user-agent") or "").startswith("Mozilla/")


def _query_param(scope: Scope, name: str) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None


async def _reject(send: Send, body: dict[str, str]) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
