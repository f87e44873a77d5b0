"""Reading a provider's event stream: bytes in, `(event, data)` pairs out, one generator.

httpx-sse reads through three more generators (httpx's text decoding, its line decoder, its
event decoder), each entered once per event; at a token per read that was most of the parse's
CPU. Here the body's bytes are split into lines and fields directly; only a field's value is
decoded. The rules are the WHATWG event-stream rules the adapters need: lines end in CRLF, LF or
CR; `:` starts a comment; `data` lines join with LF; a blank line dispatches the event when it
has a name or data; `id` and `retry` are ignored (no adapter reconnects); a leading BOM is dropped;
an event the body ends in the middle of is dropped, as a browser does.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import httpx

from app.llm.aiohttp_transport import body_chunks

BOM = b"\xef\xbb\xbf"


async def read_events(response: httpx.Response) -> AsyncGenerator[tuple[str, str], None]:
    """The body's events as `(type, data)`; the type is "message" when the event names none."""
    pending = b""  # the unfinished last line (and a CR that may be the first half of a CRLF)
    fields = _Fields()
    first = True
    async for chunk in body_chunks(response):
        if first:
            first = False
            if chunk.startswith(BOM):
                chunk = chunk[len(BOM) :]
        text = pending + chunk if pending else chunk
        if b"\r" in text:
            held = text.endswith(b"\r")  # its LF may be in the next chunk
            if held:
                text = text[:-1]
            lines = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
            pending = lines.pop() + (b"\r" if held else b"")
        else:
            lines = text.split(b"\n")
            pending = lines.pop()
        for event in fields.read(lines):
            yield event
    if pending.endswith(b"\r"):  # the body's last line ended with a CR after all
        for event in fields.read([pending[:-1]]):
            yield event


class _Fields:
    """The event being read, across chunks."""

    __slots__ = ("data", "event")

    def __init__(self) -> None:
        self.event = ""
        self.data: list[str] = []

    def read(self, lines: list[bytes]) -> list[tuple[str, str]]:
        """The events these whole lines complete."""
        out: list[tuple[str, str]] = []
        for line in lines:
            if not line:
                if self.data or self.event:
                    out.append((self.event or "message", "\n".join(self.data)))
                    self.event, self.data = "", []
                continue
            if line[0] == 0x3A:  # ":", a comment (a keep-alive)
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self.data.append(value.decode(errors="replace"))
            elif name == b"event":
                self.event = value.decode(errors="replace")
        return out
