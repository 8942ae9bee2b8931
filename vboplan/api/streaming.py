"""Long JSON lists decoded while they arrive: an organization auditing 100,000 users answers ~60 MB, which is
never held whole, as bytes or as decoded items."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from vboplan.errors import ApiError

if TYPE_CHECKING:
    import httpx

    from vboplan.api.session import Session

T = TypeVar("T")


def each_of_list(session: Session, path: str, noun: str, each: Callable[[dict[str, Any]], T] | None) -> list[Any]:
    """GET ``path``, a JSON list of objects, decoded as it arrives (see :meth:`Session.request`'s ``consume``)."""
    what = f"GET /{session.version}/{path}"
    items: list[Any] = []

    def consume(response: httpx.Response) -> None:
        items.clear()  # a retried request reads the list again
        try:
            for item in each_in_array(decoded(response.iter_bytes(), response.encoding or "utf-8")):
                if not isinstance(item, dict):
                    raise ApiError(f"{session.where}: {what} did not return a list of {noun}")
                items.append(each(item) if each is not None else item)
        except (ValueError, RecursionError):
            raise ApiError(f"{session.where}: {what} did not answer with a JSON list") from None

    session.request("GET", path, consume=consume)
    return items


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")
_NUMBER_GOES_ON = frozenset("0123456789.eE+-")


class _Pieces:
    """Text arriving in pieces, read from a position that only moves forward: what has been read is let go."""

    def __init__(self, pieces: Iterable[str]) -> None:
        self._pieces = iter(pieces)
        self.text, self.at, self.done = "", 0, False

    def more(self) -> bool:
        """Append the next piece (keeping only the unread text); False when there is none."""
        for piece in self._pieces:
            if piece:
                self.text, self.at = self.text[self.at:] + piece, 0
                return True
        self.done = True
        return False

    def skip_space(self) -> str:
        """Move past whitespace; the next character, or "" at the end of everything."""
        if self.at < len(self.text) and self.text[self.at] not in " \t\n\r":
            return self.text[self.at]  # compact JSON: nothing to skip
        while True:
            self.at = _SPACE.match(self.text, self.at).end()  # type: ignore[union-attr]
            if self.at < len(self.text):
                return self.text[self.at]
            if not self.more():
                return ""

    def value(self) -> Any:
        """The JSON value at the position (json's C scanner), reading more pieces while it runs past the end."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.at)
            except ValueError:
                if self.more():
                    continue
                raise
            if (end == len(self.text) or isinstance(value, (int, float)) and self.text[end] in _NUMBER_GOES_ON) \
                    and self.more():
                continue  # a value cut at the end of a piece may go on in the next one (-1 of -1.5e3)
            self.at = end
            return value


def each_in_array(pieces: Iterable[str]) -> Iterator[Any]:
    """The elements of the JSON array whose text arrives as ``pieces``, decoded one at a time; ValueError when the
    text is not one JSON array."""
    text = _Pieces(pieces)
    if text.skip_space() != "[":
        raise ValueError("not a JSON array")
    text.at += 1
    if text.skip_space() == "]":
        text.at += 1
    else:
        scan = _DECODER.raw_decode
        while True:
            # The common case, compact JSON with the whole element in the text at hand, without a call per step.
            buffer, at = text.text, text.at
            try:
                value, end = scan(buffer, at)
            except ValueError:
                end = -1
            if 0 <= end < len(buffer) - 1 and buffer[end] == "," and not isinstance(value, (int, float)):
                text.at = end + 1
                yield value
                continue
            text.skip_space()
            yield text.value()
            separator = text.skip_space()
            text.at += 1
            if separator == "]":
                break
            if separator != ",":
                raise ValueError("not a JSON array")
    if text.skip_space():
        raise ValueError("extra data after the JSON array")


def decoded(chunks: Iterable[bytes], encoding: str) -> Iterator[str]:
    """The text of a body arriving as ``chunks`` (a character split between two chunks is put together)."""
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a charset Python does not know
    for chunk in chunks:
        yield decoder.decode(chunk)
    yield decoder.decode(b"", final=True)


