"""An answer's tokens, kept small: a live turn holds every token it streamed (the feed for a
resume, the attempt for the bill and the stored answer), and a worker holds a thousand turns.

A `str` per token costs about 50 bytes of object header for four characters of text, so a
1,200-token answer held as a list of strings is ~75 KB. Here every 64 tokens are joined into one
string, with each token's end offset in a 4-byte array: ~10 KB for the same answer. The newest
tokens (fewer than 64) stay as they came, so appending costs no copy but one join per block.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

BLOCK = 64  # tokens per joined string


class TokenLog(Sequence[str]):
    """An append-only sequence of strings, stored in joined blocks."""

    __slots__ = ("_blocks", "_ends", "_tail")

    def __init__(self, tokens: Iterable[str] = ()) -> None:
        self._blocks: list[str] = []
        self._ends = array("I")  # per token in a block: where it ends in its block
        self._tail: list[str] = []  # the tokens after the last full block
        for token in tokens:
            self.append(token)

    def append(self, token: str) -> None:
        tail = self._tail
        tail.append(token)
        if len(tail) == BLOCK:
            end = 0
            for piece in tail:
                end += len(piece)
                self._ends.append(end)
            self._blocks.append("".join(tail))
            self._tail = []

    def text(self) -> str:
        """All the tokens, joined."""
        return "".join(self._blocks) + "".join(self._tail)

    def __len__(self) -> int:
        return len(self._blocks) * BLOCK + len(self._tail)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self._at(i) for i in range(*index.indices(len(self)))]
        size = len(self)
        position = index + size if index < 0 else index
        if not 0 <= position < size:
            raise IndexError("token index out of range")
        return self._at(position)

    def __iter__(self) -> Iterator[str]:
        for block in range(len(self._blocks)):
            yield from self._block_tokens(block)
        yield from list(self._tail)

    def _at(self, position: int) -> str:
        block, offset = divmod(position, BLOCK)
        if block == len(self._blocks):
            return self._tail[offset]
        start = self._ends[position - 1] if offset else 0
        return self._blocks[block][start : self._ends[position]]

    def _block_tokens(self, block: int) -> Iterator[str]:
        text, start = self._blocks[block], 0
        for end in self._ends[block * BLOCK : (block + 1) * BLOCK]:
            yield text[start:end]
            start = end
