"""The canonical JSON of plan files and their digests: the msgspec path for names writes json's very text."""

from __future__ import annotations

import json
import random

from vboplan.jsontext import _encode_parts, canonical_digest, document_text


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_names_encode_as_json_writes_them_for_every_character() -> None:
    every = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    names = ["".join(every[at:at + 512]) for at in range(0, len(every), 512)] + every[:300] + ["", "a\\b\"c\n"]
    assert _encode_parts(names, None) == ("list", [], [_canonical(name) for name in names])
    nested = {"audit_items": {"contoso": {"users": names[:50], "groups": []}}}
    assert _encode_parts(nested, None)[2] == [_canonical(nested["audit_items"])]


def test_keys_are_sorted_as_json_sorts_them() -> None:
    rng = random.Random(7)
    pool = ["a", "B", "é", "ÿ", "\u0100", "\uffff", "😀", "\U0010fffd", "_", "\x7f", "\x01", " ", "\ue000", "𝔘"]
    for _ in range(500):
        value = {"".join(rng.choice(pool) for _ in range(rng.randint(0, 4))):
                 {"".join(rng.choice(pool) for _ in range(3)): ["".join(rng.choice(pool) for _ in range(3))]}
                 for _ in range(rng.randint(1, 6))}
        assert _encode_parts({"x": value}, None)[2] == [_canonical(value)]


def test_what_utf8_cannot_hold_and_other_values_go_through_json() -> None:
    value = {"users": ["ok", "lone \ud800 surrogate"], "count": 3, "ratio": 1e16, "on": True, "none": None}
    assert _encode_parts({"x": value, "y": ["\udfff"]}, None)[2] == [_canonical(value), _canonical(["\udfff"])]


def test_the_digest_is_sha256_of_the_canonical_text() -> None:
    import hashlib

    document = {"scope": {"audit_items": {"org": {"users": [f"user{k}@x.com" for k in range(2000)] + ["é😀"]}}},
                "changes": [], "environment": "dev", "n": 1.5}
    assert canonical_digest(document) == hashlib.sha256(_canonical(document).encode("utf-8")).hexdigest()
    assert json.loads(document_text(document)) == document
