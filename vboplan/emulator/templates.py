"""Directory entries encoded from a template, a page at a time: the bytes :func:`msgspec.json.encode` gives for each
user's view, without building the views.

A cold page of 10,000 users was mostly Python building each user's view (defaults, the item's fields, the id in the
version's form, three links) and encoding it, about 10 us a user. Users of one key order (the seed's) share all of
their view but a few strings, so :class:`UserTemplate` works out the view's layout once per key order, from the
same defaults, declared properties and link prefixes the view uses, and joins the constant parts with the columns
of the users' strings in loops that run in C (``map``, ``zip``, ``str.join``). A group of entries the template
cannot write exactly (a value that is not a string, a string JSON must escape, an id of another form, a layout with
something computed) is left to the caller: :meth:`UserTemplate.encode` returns None for those entries and the
caller builds their views. tests/emulator/test_directory_pages.py holds the template to the views' bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

from msgspec.json import encode

# The constant parts of a view (one more than the slots) and the item keys whose strings fill the slots between
# them, in order ("id": the id in the version's form); None: the template cannot write such items.
Layout = tuple[tuple[str, ...], tuple[str, ...]] | None


class UserTemplate:
    """Users' views of one organization, version and link base, encoded by filling a layout per key order.

    ``defaults`` are the view's defaults (the item's own keys win, keeping the defaults' order), ``declared`` the
    properties the version declares, ``wire_ids`` turns stored ids into the version's (None: not all of them can
    be), ``prefix`` is the users' link prefix (the id follows it), ``organization`` the organization's link."""

    def __init__(self, defaults: Mapping[str, Any], declared: Container[str],
                 wire_ids: Callable[[list[str]], list[str] | None], prefix: str, organization: str) -> None:
        self.defaults, self.declared, self.wire_ids = defaults, declared, wire_ids
        self.prefix, self.organization = prefix, organization
        self._layouts: dict[tuple[str, ...], Layout] = {}

    def encode(self, items: list[dict[str, Any]]) -> list[bytes | None]:
        """Each item's view as JSON bytes, or None where the item needs its view built."""
        out: list[bytes | None] = [None] * len(items)
        orders = list(map(tuple, items))
        if len(set(orders)) == 1:
            groups = {orders[0]: range(len(items))} if items else {}
        else:
            groups = {}
            for index, order in enumerate(orders):
                groups.setdefault(order, []).append(index)  # type: ignore[attr-defined]
        for order, indexes in groups.items():
            layout = self._layout_of(order)
            if layout is None:
                continue
            members = items if len(indexes) == len(items) else [items[index] for index in indexes]
            columns = self._columns(layout, members)
            if columns is None:
                continue
            for index, text in zip(indexes, map(str.encode, map("".join, zip(*self._parts(layout, columns),
                                                                                 strict=False))), strict=True):
                out[index] = text  # the constants repeat
        return out

    def array_pieces(self, items: list[dict[str, Any]]) -> list[str] | None:
        """The pieces of text whose join is the JSON array of the items' views (``[``, :meth:`encode`'s entries
        joined by commas, ``]``): a cold page of 10,000 users is joined once, with no object per entry. None when one
        of the items needs its view built, or the items are not all of one key order."""
        if not items:
            return ["[]"]
        if len(set(map(tuple, items))) != 1:
            return None
        layout = self._layout_of(tuple(items[0]))
        columns = self._columns(layout, items) if layout is not None else None
        if layout is None or columns is None:
            return None
        parts = self._parts(layout, columns)
        parts[0] = repeat("," + layout[0][0])  # each entry after a comma; the first after the bracket instead
        pieces = list(chain.from_iterable(zip(*parts, strict=False)))
        pieces[0] = "[" + layout[0][0]
        pieces.append("]")
        return pieces

    def _layout_of(self, order: tuple[str, ...]) -> Layout:
        """The layout of items with keys ``order``, worked out once."""
        if order not in self._layouts:
            self._layouts[order] = self._layout(order)
        return self._layouts[order]

    def _columns(self, layout: tuple[tuple[str, ...], tuple[str, ...]], items: list[dict[str, Any]]
                 ) -> dict[str, list[str]] | None:
        """The strings of ``items`` (all of the layout's key order) that fill the layout's slots, by key, ids in
        the version's form; None where one of them does not fit it."""
        columns = {key: list(map(itemgetter(key), items)) for key in set(layout[1])}
        if any(set(map(type, column)) != {str} or not _plain("".join(column)) for column in columns.values()):
            return None
        wired = self.wire_ids(columns["id"])
        if wired is None or not _plain("".join(wired)):
            return None
        columns["id"] = wired
        return columns

    @staticmethod
    def _parts(layout: tuple[tuple[str, ...], tuple[str, ...]], columns: dict[str, list[str]]) -> list[Any]:
        """The iterables whose zip gives each entry's pieces in order: the constants (repeated) between the
        columns of the slots."""
        constants, slots = layout
        parts: list[Any] = [repeat(constants[0])]
        for key, constant in zip(slots, constants[1:], strict=True):
            parts += [columns[key], repeat(constant)]
        return parts

    def _layout(self, order: tuple[str, ...]) -> Layout:
        """The layout of items with keys ``order``, or None where the view holds something besides the defaults,
        the item's strings and the links."""
        prefix, organization = self.prefix, self.organization
        if "id" not in order or "_links" in order or "_links" in self.defaults or "_links" not in self.declared \
                or not _plain(prefix) or not _plain(organization):
            return None
        merged = [*self.defaults, *(key for key in order if key not in self.defaults)]
        shown = [key for key in merged if key in self.declared and (key in order or self.defaults[key] is not None)]
        pieces: list[str | tuple[str]] = ["{"]  # text, or (key,): a slot the key's string fills
        for number, key in enumerate(shown):
            pieces.append(("," if number else "") + encode(key).decode() + ":")
            pieces += ['"', (key,), '"'] if key in order else [encode(self.defaults[key]).decode()]
        pieces += [("," if shown else "") + f'"_links":{{"self":{{"href":"{prefix}', ("id",),
                   f'"}},"organization":{{"href":"{organization}"}},"onedrives":{{"href":"{prefix}', ("id",),
                   '/onedrives"}}}']
        constants, slots = [""], []
        for piece in pieces:
            if isinstance(piece, tuple):
                slots.append(piece[0])
                constants.append("")
            else:
                constants[-1] += piece
        return tuple(constants), tuple(slots)


def _plain(text: str) -> bool:
    """Whether JSON writes ``text`` as its characters (msgspec escapes quotes, backslashes and control characters;
    a lone surrogate has no UTF-8): its encoding is then its UTF-8 between quotes."""
    try:
        return len(encode(text)) == len(text.encode()) + 2
    except UnicodeEncodeError:
        return False
