"""Routing by the first segment of a path finds the route a scan of every route in order finds."""

from __future__ import annotations

import re

import pytest

from vboplan.emulator.app import ROUTES, Emulator, _parameters
from vboplan.schema import operation


def _scan(version: str, rest: str) -> tuple[str, dict[str, str]] | None:
    for route in ROUTES[version]:
        found = route.regex.fullmatch(rest)
        if found:
            return route.template, found.groupdict()
    return None


def _paths(template: str) -> list[str]:
    concrete = re.sub(r"\{\w+\}", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", template)
    first = concrete.split("/")[1]
    # U+017F (long s) and U+212A (Kelvin sign) match s and k under re.IGNORECASE, which str.lower does not fold
    folded = concrete.replace("s", "\u017f", 1).replace("k", "\u212a", 1)
    return [concrete, concrete.lower(), concrete.upper(), concrete + "/", concrete + "//", concrete + "/x",
            "/" + concrete, folded, concrete.replace(first, first + "x", 1), concrete[:-1]]


@pytest.mark.parametrize("version", sorted(ROUTES))
def test_the_first_segment_index_matches_as_a_scan_of_every_route(version: str) -> None:
    paths = ["", "/", "//", "/\u017fERVICEINSTANCE", "/unknown", "/Organizations/", "/Jobs/1/enable"]
    for route in ROUTES[version]:
        paths += _paths(route.template)
    for rest in paths:
        route, params = Emulator._match(version, rest)
        assert ((route.template, params) if route else None) == _scan(version, rest), rest


@pytest.mark.parametrize("version", sorted(ROUTES))
def test_parameters_are_the_documented_ones(version: str) -> None:
    for route in ROUTES[version]:
        for method in route.handlers:
            op = operation(version, method, f"/{version}{route.template}") or {}
            kept = [(p.name, p.where, p.schema) for p in _parameters(version, method, route.template)]
            assert kept == [(p["name"], p.get("in"), p.get("schema", {})) for p in op.get("parameters", [])]
