"""Generic REST calls from declared operations: a collection's kind says which method, path, success statuses and
paging each of its calls has on each API version, and this layer sends them. Nothing here knows a collection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vboplan.api.paging import Paging
from vboplan.api.streaming import each_of_list


@dataclass(frozen=True)
class Operation:
    """One call of the API: ``path`` is relative to ``/vN/`` and may name ``{id}`` (the object's id) and other
    placeholders filled by the caller; ``status`` lists the answers that mean done; ``paged`` says the answer is a
    ``PageOfX`` (v8 lists) rather than a plain array."""

    method: str
    path: str
    status: tuple[int, ...] = (200,)
    paged: bool = False
    query: tuple[tuple[str, str], ...] = ()   # sent with every call (``extendedView=true`` of v6/v7 proxies)

    def url(self, **values: str) -> str:
        try:
            return self.path.format(**values)
        except KeyError as exc:  # a spec names a placeholder its caller does not fill: a bug, said plainly
            raise ValueError(f"operation {self.method} {self.path}: no value for {exc}") from None


class Rest(Paging):
    """A session that sends declared operations."""

    def list_objects(self, operation: Operation, **values: str) -> list[dict[str, Any]]:
        """Every object a list operation answers, whether the version pages it or not."""
        path = operation.url(**values)
        if operation.paged:
            return list(self.iter_pages(path, dict(operation.query)))
        # An unpaged list (v6/v7 collections) may be long: decoded as it arrives, never held whole as bytes.
        return each_of_list(self, path, "objects", None, params=dict(operation.query) or None)

    def call(self, operation: Operation, body: Any = None, **values: str) -> Any:
        """Send ``operation`` with ``body``; the decoded answer, or None when the server answered without one."""
        path = operation.url(**values)
        response = self.request(operation.method, path, json=body, params=dict(operation.query) or None,
                                expect=operation.status)
        if not response.content:
            return None
        return self._json(response, f"{operation.method} /{self.version}/{path}")
