"""The mail sink over HTTP in Mailpit's API shape (the Supabase CLI's mail catcher since v2).

Mounted at `/mail` on the stack's port (the CLI serves Mailpit on its own port, 54324):

- `GET  /mail/`                       a plain page listing the mails, links clickable;
- `GET  /mail/api/v1/messages`        Mailpit's message list (`start`, `limit`);
- `GET  /mail/api/v1/search?query=`   the same, filtered by `to:<address>` (or any text);
- `GET  /mail/api/v1/message/{id}`    one message with `Text` and `HTML` (`latest` works);
- `DELETE /mail/api/v1/messages`      empty the sink.

Field names and nesting follow Mailpit's v1 API so scripts written for `supabase start` work.
"""

from __future__ import annotations

import html
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from app.local.auth.mail import SENDER_ADDRESS, SENDER_NAME, Mail, Mailbox, mailbox_of
from app.local.auth.users import rfc3339
from app.local.context import StackContext


def _address(address: str, name: str = "") -> dict[str, str]:
    return {"Name": name, "Address": address}


def _summary(mail: Mail) -> dict[str, Any]:
    return {
        "ID": mail.id,
        "MessageID": f"{mail.id}@localhost",
        "Read": False,
        "From": _address(SENDER_ADDRESS, SENDER_NAME),
        "To": [_address(mail.to)],
        "Cc": [],
        "Bcc": [],
        "ReplyTo": [],
        "Subject": mail.subject,
        "Created": rfc3339(mail.created_at),
        "Username": "",
        "Tags": [],
        "Size": len(mail.text.encode()),
        "Attachments": 0,
        "Snippet": " ".join(mail.text.split())[:250],
    }


def _message(mail: Mail) -> dict[str, Any]:
    body = _summary(mail)
    for gone in ("Read", "Created", "Attachments", "Snippet"):
        body.pop(gone)
    return body | {
        "ReturnPath": SENDER_ADDRESS,
        "Date": rfc3339(mail.created_at),
        "Text": mail.text,
        "HTML": mail.html,
        "Inline": [],
        "Attachments": [],
    }


def _listing(mails: list[Mail], total: int, request: Request) -> JSONResponse:
    start = _int(request.query_params.get("start"), 0)
    limit = _int(request.query_params.get("limit"), 50)
    page = mails[start : start + limit]
    return JSONResponse(
        {
            "total": total,
            "unread": total,
            "count": len(page),
            "messages_count": len(mails),
            "messages_unread": len(mails),
            "start": start,
            "tags": [],
            "messages": [_summary(m) for m in page],
        }
    )


def _int(raw: str | None, default: int) -> int:
    return int(raw) if raw and raw.isdigit() else default


def _matches(mail: Mail, query: str) -> bool:
    for term in query.split():
        if term.lower().startswith("to:"):
            if mail.to.lower() != term[3:].lower():
                return False
        elif term.lower() not in (mail.subject + " " + mail.text + " " + mail.to).lower():
            return False
    return True


def create_mail_app(ctx: StackContext) -> Starlette:
    box: Mailbox = mailbox_of(ctx)

    async def messages(request: Request) -> Response:
        if request.method == "DELETE":
            box.clear()
            return PlainTextResponse("ok")
        mails = box.messages()
        return _listing(mails, len(mails), request)

    async def search(request: Request) -> Response:
        everything = box.messages()
        query = request.query_params.get("query", "")
        return _listing([m for m in everything if _matches(m, query)], len(everything), request)

    async def message(request: Request) -> Response:
        wanted = request.path_params["mail_id"]
        mails = box.messages()
        mail = (mails[0] if mails else None) if wanted == "latest" else box.get(wanted)
        if mail is None:
            return PlainTextResponse("message not found", status_code=404)
        return JSONResponse(_message(mail))

    async def index(_: Request) -> Response:
        rows = "".join(
            f"<li><b>{html.escape(m.to)}</b> {html.escape(m.subject)} —"
            f' <a href="{html.escape(m.link)}">{html.escape(m.link)}</a>'
            f" code <code>{m.otp}</code></li>"
            for m in box.messages()
        )
        return HTMLResponse(f"<h1>Local mail</h1><ul>{rows or '<li>no mail yet</li>'}</ul>")

    return Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            Route("/api/v1/messages", messages, methods=["GET", "DELETE"]),
            Route("/api/v1/search", search, methods=["GET"]),
            Route("/api/v1/message/{mail_id}", message, methods=["GET"]),
        ]
    )
