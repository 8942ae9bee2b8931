"""Fixtures of the emulator's tests; the OpenAPI checks every client here runs live in helpers.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from vboplan.emulator import Emulator, Store

from .helpers import VERSIONS, Api, FakeClock, seed_data, wsgi_client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> Store:
    return Store.from_data(seed_data())


@pytest.fixture
def make_emulator(store: Store, clock: FakeClock) -> Callable[..., Emulator]:
    """Build an emulator over ``store`` with the fake clock and reproducible faults."""
    def make(**options: Any) -> Emulator:
        options.setdefault("clock", clock)
        options.setdefault("seed", 1)
        options.setdefault("versions", VERSIONS)  # these tests cover every version; profiles have their own tests
        return Emulator(options.pop("store", store), **options)
    return make


@pytest.fixture
def emulator(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator()


@pytest.fixture
def client(emulator: Emulator) -> Iterator[httpx.Client]:
    with wsgi_client(emulator) as http:
        yield http


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def api(client: httpx.Client, version: str) -> Api:
    """A logged-in client of each API version in turn."""
    return Api(client, version).login()
