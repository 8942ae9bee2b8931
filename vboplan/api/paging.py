"""Paged collections (``PageOfX``: ``offset``, ``limit``, ``setId``, ``results``, ``_links``; ``totalCount`` in
v6/v7 only), read in order with the remaining pages fetched concurrently."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

from vboplan.api.session import Session
from vboplan.api.versions import PAGE_LIMIT_MAX
from vboplan.errors import ApiError
from vboplan.threads import ThreadPoolExecutor


class Paging(Session):
    """A session that reads paged collections."""

    def iter_pages(self, path: str, params: dict[str, Any] | None = None, limit: int = PAGE_LIMIT_MAX,
                   ahead: int = 0, decode: Callable[[bytes], dict[str, Any]] | None = None) -> Iterator[Any]:
        """Every item of a paged collection, in order (:meth:`each_page`'s results one by one)."""
        for results in self.each_page(path, params, limit, ahead, decode):
            yield from results

    def each_page(self, path: str, params: dict[str, Any] | None = None, limit: int = PAGE_LIMIT_MAX,
                  ahead: int = 0, decode: Callable[[bytes], dict[str, Any]] | None = None) -> Iterator[list[Any]]:
        """The results of each page of a paged collection, in order (a caller that looks at 100,000 entries can
        look at a page's at once). The first page comes alone (it names the ``setId`` the others
        reuse, and ``totalCount`` where the version has it); the rest are fetched concurrently: every remaining
        page at once when the total is known (v6/v7), else ``ahead`` pages speculatively beyond the last one
        received (v8: a page past the end comes back empty and only costs its round trip). ``ahead`` defaults to
        the client's in-flight bound. ``decode`` turns a page's bytes into the page (a mapping with ``results``,
        ``setId``, ``totalCount`` and ``_links``) instead of decoding all of it as JSON: a typed decoder that keeps
        only the fields its caller reads (the results then are what it makes of each); ValueError: no page."""
        first = self._page(path, {**(params or {}), "offset": 0, "limit": limit}, decode)
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
                pages = [pool.submit(self._page, path, {**query, "offset": offset}, decode)
                         for offset in range(step, total, step)]
                yield results
                for page in pages:
                    yield page.result()["results"]
                return
            pending: deque[Future[dict[str, Any]]] = deque()
            offset = step
            while len(pending) < window:
                pending.append(pool.submit(self._page, path, {**query, "offset": offset}, decode))
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
                pending.append(pool.submit(self._page, path, {**query, "offset": offset}, decode))
                offset += step
                yield results
        finally:
            pool.shutdown(wait=not past_the_end, cancel_futures=True)

    def _page(self, path: str, query: dict[str, Any],
              decode: Callable[[bytes], dict[str, Any]] | None = None) -> dict[str, Any]:
        try:
            page = self.get(path, query) if decode is None else \
                decode(self.request("GET", path, params=query).content)
        except ValueError:  # the decoder's refusal (self.get raises ApiError on bad JSON)
            page = None
        results = page.get("results") if isinstance(page, dict) else None
        if not isinstance(page, dict) or not isinstance(results, list) \
                or (decode is None and not all(isinstance(item, dict) for item in results)) \
                or not isinstance(page.get("_links") or {}, dict):
            raise ApiError(f"{self.where}: GET /{self.version}/{path} did not return a page")
        return page

    def first_page(self, path: str, params: dict[str, Any], limit: int = 100) -> list[dict[str, Any]]:
        page = self.get(path, {**params, "offset": 0, "limit": limit})
        if not isinstance(page, dict) or not isinstance(page.get("results"), list) \
                or not all(isinstance(item, dict) for item in page["results"]):
            raise ApiError(f"{self.where}: GET /{self.version}/{path} did not return a page")
        return page["results"]

