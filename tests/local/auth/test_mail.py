"""The mail sink on its own: bounded, newest first, and what `chat-stream dev --print-mail`
prints for each mail."""

from __future__ import annotations

import pytest

from app.cli import build_parser
from app.local.auth.mail import Mail, Mailbox
from app.local.devserver import print_mail_to_stdout


def _mail(to: str, kind: str = "magiclink") -> Mail:
    return Mail(to=to, kind=kind, link=f"http://x/verify?to={to}", otp="123456", token_hash="h")


def test_mailbox_keeps_the_newest_mails_up_to_its_limit() -> None:
    box = Mailbox(limit=2)
    for n in range(3):
        box.deliver(_mail(f"u{n}@example.com"))

    assert [m.to for m in box.messages()] == ["u2@example.com", "u1@example.com"]
    assert box.latest("U1@example.com") is not None  # addresses compare case-insensitively


def test_mailbox_subscribers_see_every_delivery() -> None:
    box = Mailbox()
    seen: list[Mail] = []
    box.subscribe(seen.append)

    box.deliver(_mail("a@example.com"))

    assert [m.to for m in seen] == ["a@example.com"]


def test_print_mail_prints_recipient_subject_link_and_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    mail = _mail("a@example.com", "recovery")

    print_mail_to_stdout(mail)

    out = capsys.readouterr().out
    assert "a@example.com" in out and "Reset your password" in out
    assert mail.link in out and "123456" in out


def test_reauthentication_mail_has_a_code_and_no_link() -> None:
    mail = Mail(to="a@example.com", kind="reauthentication", link="", otp="654321", token_hash="h")

    assert "654321" in mail.text and "http" not in mail.text
    assert mail.subject == "654321 is your verification code"


def test_dev_accepts_print_mail() -> None:
    args = build_parser().parse_args(["dev", "--print-mail"])

    assert args.print_mail is True
    assert build_parser().parse_args(["dev"]).print_mail is False
