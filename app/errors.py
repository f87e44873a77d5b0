"""Error kinds, their HTTP status and the warm first-person copy the app shows.

    AppError(code, status, user_message)
    ├── BadRequest (400)            invalid JSON, wrong types (`message_empty`, `message_too_long`)
    ├── AuthError (401)             missing, forged, expired or wrong-audience token
    ├── NotFound (404)              no such conversation, or someone else's (indistinguishable)
    │   └── TurnNotFound            no such turn to resume, or someone else's
    ├── Conflict (409)              a turn with this clientMessageId is still being answered
    │   └── ClientMessageIdReused   the same clientMessageId with a different message
    ├── TooLarge (413)              body over the cap, refused before parsing
    ├── UnsupportedMediaType (415)  not application/json
    │   └── UnsupportedEncoding     a Content-Encoding other than identity
    ├── BodyTimeout (408)           the body stopped arriving
    ├── ClientClosed (499)          the client hung up mid-body (logged only; nobody to answer)
    ├── RateLimited (429)           too many requests / streams      } carry retry_after
    ├── OverBudget (429)            daily or monthly USD cap reached }
    ├── ProviderError (502)         the model failed; `.retryable` decides fallback
    │   ├── ProviderUnavailable     refused, 5xx, 429, 529 before the head
    │   ├── ProviderTimeout         no head within the availability budget, or idle too long
    │   └── ProviderStreamError     dropped connection, error event, malformed event mid-stream
    ├── StoreError (503)            the database API failed or timed out (retrying may help)
    │   └── KeyRefused              the API gateway or PostgREST refused the service's own key
    ├── AuthUnavailable (503)       Supabase Auth could not say whether a token is good
    ├── ShuttingDown (503)          the worker is draining for a deploy (carries retry_after)
    ├── Overloaded (503)            the worker is past its capacity (carries retry_after)
    └── StoreRejected (422)         the database refused the data itself (retrying cannot help)

Adapters translate third-party exceptions into these at their edge (`raise ... from exc`); the API
layer turns them into `{"error", "userMessage", "code"}` JSON or an SSE error event. Internal
detail goes to logs only. `user_message` is the code's sentence in `app.user_messages`, the one
table of what users read.
"""

from __future__ import annotations

from app.user_messages import USER_MESSAGES, user_message

AUTH_MESSAGE = USER_MESSAGES["unauthorized"]


class AppError(Exception):
    code = "internal_error"
    status = 500
    title = "Internal error"  # safe to show a client; `detail` is for logs only
    retry_after: int | None = None  # seconds, sent as Retry-After when set

    def __init__(self, detail: str = "", *, code: str | None = None) -> None:
        super().__init__(detail or self.code)
        self.detail = detail
        if code is not None:
            self.code = code

    @property
    def public(self) -> str:
        return self.title

    @property
    def user_message(self) -> str:
        """What the app shows the user (`app.user_messages`)."""
        return user_message(self.code)


class BadRequest(AppError):
    """The one kind whose detail is written for the client (what was wrong with the request)."""

    code, status, title = "invalid_request", 400, "Invalid request"

    @property
    def public(self) -> str:
        return self.detail or self.title


class AuthError(AppError):
    code, status = "unauthorized", 401
    title = "Unauthorized"


class NotFound(AppError):
    code, status = "not_found", 404
    title = "Conversation not found"


class TurnNotFound(NotFound):
    """A resume of a turn that does not exist or is someone else's (indistinguishable)."""

    code = "turn_not_found"
    title = "Turn not found"


class Conflict(AppError):
    """A second request for a turn that is still streaming: one answer per clientMessageId."""

    code, status = "turn_in_flight", 409
    title = "This message is still being answered"


class ClientMessageIdReused(Conflict):
    """One clientMessageId, one message: a different text under a used id is not a retry."""

    code, title = "client_message_id_reused", "This clientMessageId was used for another message"


class TooLarge(AppError):
    code, status = "payload_too_large", 413
    title = "Request body too large"


class UnsupportedMediaType(AppError):
    code, status = "unsupported_media_type", 415
    title = "Content-Type must be application/json"


class UnsupportedEncoding(UnsupportedMediaType):
    title = "Content-Encoding is not supported; send the JSON body unencoded"


class BodyTimeout(AppError):
    """The body did not arrive in time (a stalled or slow-loris client)."""

    code, status = "request_timeout", 408
    title = "The request body took too long to arrive"


class ClientClosed(AppError):
    """The client hung up before its body was complete; no response can reach it (nginx's 499)."""

    code, status = "client_closed_request", 499
    title = "Client closed the request"


class _Throttled(AppError):
    status = 429

    def __init__(self, detail: str = "", *, retry_after: int = 1, code: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after = max(1, int(retry_after))

    @property
    def user_message(self) -> str:
        """Says when the user can continue: "in a moment", "tomorrow", "on 1 January"."""
        return user_message(self.code, retry_after=self.retry_after)


class RateLimited(_Throttled):
    code = "rate_limited"
    title = "Too many requests"


class OverBudget(_Throttled):
    code = "over_budget"
    title = "Usage budget reached"


class ProviderError(AppError):
    """`kind` names the failure for operators (metrics, logs): the upstream's own error type
    when it sent one (`overloaded_error`, `rate_limit_error`), else the code."""

    code, status = "provider_error", 502
    title = "The model is unavailable"
    retryable = True

    def __init__(self, detail: str = "", *, kind: str | None = None) -> None:
        super().__init__(detail)
        self.kind = kind or self.code


class ProviderUnavailable(ProviderError):
    code = "provider_unavailable"


class ProviderTimeout(ProviderError):
    code = "provider_timeout"


class ProviderStreamError(ProviderError):
    code = "provider_stream_error"
    retryable = False


class StoreError(AppError):
    code, status = "store_unavailable", 503
    title = "Service temporarily unavailable"


class KeyRefused(StoreError):
    """The Data API refused the service's own (publishable or secret) key: a deployment error,
    which users see as the store being unavailable and `/readyz` names as the key."""


class AuthUnavailable(AppError):
    """Supabase Auth is unreachable, slow or failing: the token may be good, so not a 401."""

    code, status = "auth_unavailable", 503
    title = "Sign-in is temporarily unavailable"


class ShuttingDown(AppError):
    """This worker is draining for a deploy: try again (the load balancer moves on)."""

    code, status = "shutting_down", 503
    title = "This server is restarting"

    def __init__(self, detail: str = "", *, retry_after: int = 2) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Overloaded(AppError):
    """This worker is past its capacity: refused before any work, so retrying elsewhere helps."""

    code, status = "overloaded", 503
    title = "This server is busy"

    def __init__(self, detail: str = "", *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after))


class StoreRejected(AppError):
    """The database refused the data itself; unlike a StoreError, retrying cannot help."""

    code, status = "store_rejected", 422
    title = "The request could not be stored"
