"""Paged collections (``PageOfX``: ``offset``, ``limit``, ``setId``, ``results``, ``_links``; ``totalCount`` in
v6/v7 only), read in order with the remaining pages fetched concurrently."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

from vboplan.api.session import Session
from vboplan.api.transport import WireError
from vboplan.api.versions import PAGE_LIMIT_MAX
from vboplan.errors import ApiError
from vboplan.threads import ThreadPoolExecutor


class Paging(Session):
    """A session that reads paged collections."""

    def iter_pages(self, path: str, params: dict[str, Any] | None = None, limit: int = PAGE_LIMIT_MAX,
                   ahead: int = 0, decode: Callable[[Any], dict[str, Any]] | None = None) -> Iterator[Any]:
        """Every item of a paged collection, in order (:meth:`each_page`'s results one by one)."""
        for results in self.each_page(path, params, limit, ahead, decode):
            yield from results

    def each_page(self, path: str, params: dict[str, Any] | None = None, limit: int = PAGE_LIMIT_MAX,
                  ahead: int = 0, decode: Callable[[Any], dict[str, Any]] | None = None) -> Iterator[list[Any]]:
        """The results of each page of a paged collection, in order (a caller that looks at 100,000 entries can
        look at a page's at once). The first page comes alone (it names the ``setId`` the others reuse, and
        ``totalCount`` where the version has it); the rest are fetched concurrently: every remaining page at once
        when the total is known (v6/v7), else ``ahead`` pages speculatively beyond the last one received (v8: a page
        past the end comes back empty and only costs its round trip). ``ahead`` defaults to the client's in-flight
        bound. ``decode`` turns a page's bytes (a buffer holding them) into the page (a mapping with ``results``,
        ``setId``, ``totalCount`` and ``_links``) instead of decoding all of it as JSON: a typed decoder that keeps
        only the fields its caller reads (the results then are what it makes of each); ValueError: no page."""
        # The bodies of decoded pages are read into buffers given back after each decode, for the next page: a fresh
        # 8 MB body per page of 10,000 users was 2,000 page faults (~4 ms of CPU) each.
        buffers: list[bytearray] = []
        first = self._page(path, {**(params or {}), "offset": 0, "limit": limit}, decode, buffers)
        results = first["results"]
        set_id = first.get("setId")
        total = first.get("totalCount")
        links = first.get("_links") or {}
        if not results or len(results) < limit or (isinstance(total, int) and len(results) >= total) \
                or (links and "next" not in links):
            yield results
            return
        query = {**(params or {}), "limit": limit, **({"setId": set_id} if set_id else {})}
        step = len(results)
        window = max(1, ahead or self.max_in_flight)
        pool = ThreadPoolExecutor(max_workers=window)
        # The next pages are asked for before the caller looks at the first one, so the server works on them while
        # the caller does. Pages read ahead past the end (v8) are not waited for: they finish on their own while
        # the caller goes on, and the session waits for them before it logs out.
        past_the_end = False
        try:
            if isinstance(total, int):
                pages = [pool.submit(self._page, path, {**query, "offset": offset}, decode, buffers)
                         for offset in range(step, total, step)]
                yield results
                for page in pages:
                    yield page.result()["results"]
                return
            pending: deque[Future[dict[str, Any]]] = deque()
            offset = step
            while len(pending) < window:
                pending.append(pool.submit(self._page, path, {**query, "offset": offset}, decode, buffers))
                offset += step
            yield results
            while True:
                page = pending.popleft().result()
                results = page["results"]
                links = page.get("_links") or {}
                if len(results) < step or (links and "next" not in links):
                    past_the_end = True
                    yield results
                    return
                pending.append(pool.submit(self._page, path, {**query, "offset": offset}, decode, buffers))
                offset += step
                yield results
        finally:
            pool.shutdown(wait=not past_the_end, cancel_futures=True)

    def _page(self, path: str, query: dict[str, Any], decode: Callable[[Any], dict[str, Any]] | None = None,
              buffers: list[bytearray] | None = None) -> dict[str, Any]:
        try:
            if decode is None:
                page = self.get(path, query)
            elif buffers is None:
                page = decode(self.request("GET", path, params=query).content)
            else:
                page = self._decoded_in(buffers, path, query, decode)
        except ValueError:  # the decoder's refusal (self.get raises ApiError on bad JSON)
            page = None
        results = page.get("results") if isinstance(page, dict) else None
        if not isinstance(page, dict) or not isinstance(results, list) \
                or (decode is None and not all(isinstance(item, dict) for item in results)) \
                or not isinstance(page.get("_links") or {}, dict):
            raise ApiError(f"{self.where}: GET /{self.version}/{path} did not return a page")
        return page

    def _decoded_in(self, buffers: list[bytearray], path: str, query: dict[str, Any],
                    decode: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        """GET a page, its body read into a buffer of ``buffers`` (taken when the body arrives, given back once it is
        decoded), and decoded there."""
        holding: list[bytearray] = []  # the buffer holding the body, once it has arrived
        size = 0

        def consume(response: Any) -> None:
            nonlocal size
            try:
                buffer = holding.pop() if holding else buffers.pop()  # a retried request reads into the same one
            except IndexError:  # every buffer is in use: one more
                buffer = bytearray()
            buffer, size = _read_into(response, buffer)
            holding.append(buffer)

        try:
            self.request("GET", path, params=query, consume=consume, held_whole=True)
            with memoryview(holding[0]) as whole, whole[:size] as body:
                return decode(body)
        finally:
            buffers.extend(holding)

    def first_page(self, path: str, params: dict[str, Any], limit: int = 100) -> list[dict[str, Any]]:
        page = self.get(path, {**params, "offset": 0, "limit": limit})
        if not isinstance(page, dict) or not isinstance(page.get("results"), list) \
                or not all(isinstance(item, dict) for item in page["results"]):
            raise ApiError(f"{self.where}: GET /{self.version}/{path} did not return a page")
        return page["results"]


def _read_into(response: Any, buffer: bytearray) -> tuple[bytearray, int]:
    """Read a whole answer into ``buffer``, or into a larger one made for it when it does not fit; that buffer and
    the answer's length. An answer of a known length is read straight into the buffer (the wire's responses), any
    other a chunk at a time."""
    length = str(response.headers.get("Content-Length") or "")
    readinto = getattr(response, "readinto", None)
    if readinto is None or not length.isdigit() or response.headers.get("Transfer-Encoding"):
        size = 0
        for chunk in response.iter_bytes():
            buffer[size:size + len(chunk)] = chunk
            size += len(chunk)
        return buffer, size
    size = int(length)
    if len(buffer) < size:
        buffer = bytearray(size + size // 8)  # room for the next, slightly larger pages
    with memoryview(buffer) as view:
        at = 0
        while at < size:
            with view[at:size] as rest:
                read = readinto(rest)
            if not read:
                raise WireError(f"the answer broke off ({at} bytes read, more expected)")
            at += read
    return buffer, size
