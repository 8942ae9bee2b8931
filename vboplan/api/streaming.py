"""Long JSON lists decoded while they arrive: an organization auditing 100,000 users answers ~120 MB, which is
never held whole, as bytes or as decoded items.

Where the caller gives the elements' :class:`Shape`, compact JSON (what Veeam's server and the emulator send) is
decoded by msgspec a batch of elements at a time: each batch ends at the last ``},{`` of the bytes at hand that
decodes, with the text before it, to a list of whole elements (a ``},{`` inside a string or a nested value leaves
the text before it unbalanced, so it never decodes), and the fields the shape does not name are skipped in C
without being built. Anything else (another charset, whitespace between elements, an element larger than
:data:`_GIVE_UP`) goes through json's C scanner one element at a time, as :func:`each_in_array`.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from vboplan.errors import ApiError

if TYPE_CHECKING:
    import httpx

    from vboplan.api.session import Session

T = TypeVar("T")


@dataclass(frozen=True)
class Shape:
    """How the elements of a long list decode fast: ``element`` is a msgspec type naming the fields wanted (others
    are skipped), and ``convert`` makes of a batch of decoded elements what the caller's ``each`` makes of each
    element as json decodes it, so either path gives the same items."""

    element: Any
    convert: Callable[[Any], Any]
    #: A stricter type most answers decode to (strings where ``element`` takes anything), whose batches
    #: ``strict_convert`` turns into the same items without a check per field; a batch it refuses is decoded again
    #: as ``element``.
    strict: Any = None
    strict_convert: Callable[[Any], Any] | None = None

    def decode(self, data: Any) -> Any:
        """The converted elements of the JSON array ``data``: msgspec.DecodeError when it is not one, and
        msgspec.ValidationError when an element is not of ``element``'s shape."""
        if self.strict is not None and self.strict_convert is not None:
            try:
                return self.strict_convert(_decoder(self.strict).decode(data))
            except msgspec.ValidationError:
                pass  # odder values somewhere in the batch (a number for an id, a null name): the lenient type
        return self.convert(_decoder(self.element).decode(data))


def _decoder(element: Any) -> msgspec.json.Decoder[Any]:
    return _decoders.setdefault(element, msgspec.json.Decoder(list[element]))  # type: ignore[valid-type]


_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


class NotOfShape(ValueError):
    """An element is not an object of the list's shape."""


def each_of_list(session: Session, path: str, noun: str, each: Callable[[dict[str, Any]], T] | None,
                 shape: Shape | None = None, params: dict[str, Any] | None = None) -> list[Any]:
    """GET ``path``, a JSON list of objects, decoded as it arrives (see :meth:`Session.request`'s ``consume``),
    through ``shape`` where given (``each`` is then the same conversion for the elements json decodes)."""
    what = f"GET /{session.version}/{path}"
    items: list[Any] = []

    def consume(response: httpx.Response) -> None:
        items.clear()  # a retried request reads the list again
        encoding = (response.charset_encoding or "utf-8").lower().replace("_", "-")
        try:
            if shape is not None and each is not None and encoding in ("utf-8", "utf8"):
                for batch in batches_in_array(response.iter_bytes(), shape, each):
                    items.extend(batch)
                return
            for item in each_in_array(decoded(response.iter_bytes(), response.encoding or "utf-8")):
                if not isinstance(item, dict):
                    raise NotOfShape()
                items.append(each(item) if each is not None else item)
        except NotOfShape:
            raise ApiError(f"{session.where}: {what} did not return a list of {noun}") from None
        except (ValueError, RecursionError):
            raise ApiError(f"{session.where}: {what} did not answer with a JSON list") from None

    session.request("GET", path, params=params, consume=consume)
    return items


_CUT = b"},{"
_BATCH = 256 * 1024  # bytes gathered before a batch is cut off
_GIVE_UP = 16 * 1024 * 1024  # bytes without a cut that decodes: not compact JSON, or one very large element


def batches_in_array(chunks: Iterable[bytes], shape: Shape, each: Callable[[dict[str, Any]], Any]) -> Iterator[list[Any]]:
    """The elements of the JSON array arriving as UTF-8 ``chunks``, converted, a batch at a time (see the module's
    docstring); ValueError when the bytes are not one JSON array, :class:`NotOfShape` when an element is not an
    object of ``shape``. The bytes at hand always start with the array's ``[``: a batch is decoded in place, the
    ``,`` after its last element turned into ``]`` for the time of the decode (no copy of the batch)."""
    chunks = iter(chunks)
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        if buffer.lstrip():
            break
    else:
        raise ValueError("not a JSON array")
    buffer = bytearray(buffer.lstrip())
    if buffer[:1] != b"[":
        raise ValueError("not a JSON array")
    pending = True
    while pending:
        if len(buffer) >= _BATCH:
            cut = buffer.rfind(_CUT)
            if cut > 0:
                batch = _decode_until(shape, buffer, cut + 1)
                if batch is not None:
                    yield batch
                    del buffer[:cut + 1]
                    buffer[0] = 0x5B  # the "," before the next element becomes the "[" of the rest
                    continue
            if len(buffer) > _GIVE_UP:
                yield from _slowly(chain([bytes(buffer)], chunks), each)
                return
        pending = False
        for chunk in chunks:
            buffer += chunk
            pending = True
            break
    try:
        yield shape.decode(buffer)
    except msgspec.ValidationError:
        raise NotOfShape() from None
    except msgspec.DecodeError as exc:
        raise ValueError(str(exc)) from None


def _decode_until(shape: Shape, buffer: bytearray, comma: int) -> Any:
    """The converted elements of ``buffer[:comma]`` (``[`` and whole elements) with ``]`` in place of the ``,`` at
    ``comma``; None when they are not whole elements (the ``},{`` before ``comma`` was inside one)."""
    buffer[comma] = 0x5D  # "]"
    try:
        with memoryview(buffer) as view:
            return shape.decode(view[:comma + 1])
    except msgspec.ValidationError:
        raise NotOfShape() from None
    except msgspec.DecodeError:
        return None
    finally:
        buffer[comma] = 0x2C  # ","


def _slowly(chunks: Iterable[bytes], each: Callable[[dict[str, Any]], Any]) -> Iterator[list[Any]]:
    """The elements of a JSON array arriving as UTF-8 ``chunks``, through json's scanner, in batches of 1,000."""
    batch: list[Any] = []
    for element in each_in_array(decoded(chunks, "utf-8")):
        if not isinstance(element, dict):
            raise NotOfShape()
        batch.append(each(element))
        if len(batch) >= 1000:
            yield batch
            batch = []
    yield batch


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


