"""The local mail sink: every email the Auth stand-in would send, kept in memory with its link
and code (the Supabase CLI runs Mailpit for this; `mailapi` serves the sink in Mailpit's shape).

One `Mailbox` per stack, in `ctx.extra[MAILBOX_KEY]`; tests read it directly or over HTTP, and
`chat-stream dev --print-mail` subscribes to print each mail as it is sent. The oldest mails go
past `limit`, so a long-running stack cannot grow without bound.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from app.local.context import StackContext

MAILBOX_KEY = "auth_mailbox"
SENDER_NAME = "Admin"
SENDER_ADDRESS = "admin@email.com"  # the CLI's `[inbucket] admin_email` default

# GoTrue's default subjects (internal/mailer/templatemailer: defaultTemplateSubjects).
SUBJECTS = {
    "signup": "Confirm your email address",
    "invite": "You've been invited",
    "magiclink": "Your sign-in link",
    "recovery": "Reset your password",
    "email_change": "Confirm your new email address",
    "reauthentication": "{otp} is your verification code",
}
_ACTIONS = {
    "signup": "Follow this link to confirm your user",
    "invite": "You have been invited to create a user. Follow this link to accept the invite",
    "magiclink": "Follow this link to login",
    "recovery": "Follow this link to reset the password for your user",
    "email_change": "Follow this link to confirm the update of your email",
    "reauthentication": "Enter the code to confirm reauthentication",
}


@dataclass(frozen=True)
class Mail:
    """One email: who to, what kind (GoTrue's action type), its link and its one-time code."""

    to: str
    kind: str
    link: str
    otp: str
    token_hash: str
    redirect_to: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def subject(self) -> str:
        return SUBJECTS.get(self.kind, "Notification").format(otp=self.otp)

    @property
    def text(self) -> str:
        lines = [self.subject, "", _ACTIONS.get(self.kind, "")]
        if self.link:
            lines += ["", self.link]
        lines += ["", f"Alternatively, enter the code: {self.otp}"]
        return "\n".join(lines) + "\n"

    @property
    def html(self) -> str:
        action = _escape(_ACTIONS.get(self.kind, self.link))
        link = f'<p><a href="{_escape(self.link)}">{action}</a></p>'
        return (
            f"<h2>{_escape(self.subject)}</h2>"
            + (link if self.link else f"<p>{_escape(_ACTIONS.get(self.kind, ''))}</p>")
            + f"<p>Alternatively, enter the code: {self.otp}</p>"
        )


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


class Mailbox:
    """Thread-safe, bounded, newest last; subscribers are called on every delivery."""

    def __init__(self, limit: int = 1000) -> None:
        self._mails: deque[Mail] = deque(maxlen=limit)
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[Mail], None]] = []

    def deliver(self, mail: Mail) -> None:
        with self._lock:
            self._mails.append(mail)
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(mail)

    def subscribe(self, callback: Callable[[Mail], None]) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def messages(self) -> list[Mail]:
        """Newest first, as Mailpit lists them."""
        with self._lock:
            return list(reversed(self._mails))

    def to(self, address: str) -> list[Mail]:
        wanted = address.lower()
        return [m for m in self.messages() if m.to.lower() == wanted]

    def latest(self, address: str, kind: str | None = None) -> Mail | None:
        for mail in self.to(address):
            if kind is None or mail.kind == kind:
                return mail
        return None

    def get(self, mail_id: str) -> Mail | None:
        return next((m for m in self.messages() if m.id == mail_id), None)

    def clear(self) -> None:
        with self._lock:
            self._mails.clear()


def mailbox_of(ctx: StackContext) -> Mailbox:
    """The stack's mailbox, created on first use."""
    box = ctx.extra.get(MAILBOX_KEY)
    if not isinstance(box, Mailbox):
        box = ctx.extra[MAILBOX_KEY] = Mailbox()
    return box


def describe(mail: Mail) -> str:
    """One mail as `chat-stream dev --print-mail` prints it."""
    lines = [f"mail to {mail.to}: {mail.subject} ({mail.kind})"]
    if mail.link:
        lines.append(f"  link: {mail.link}")
    lines.append(f"  code: {mail.otp}")
    return "\n".join(lines)
