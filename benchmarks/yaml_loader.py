"""Benchmark: reading a variable file of 100,000 declared audit entries, the way vboplan reads variable files.

    .venv/bin/python benchmarks/yaml_loader.py [--entries 100000]

Prints the CPU time of vboplan's loader (libyaml's C parser, with line numbers) beside its peer, PyYAML's
pure-Python SafeLoader building the same line-numbered mappings (what vboplan used before), and of the same data
as a ``.json`` variable file (read through ``json``). Both loaders run in this process, one after the other.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vboplan import yamlfile  # noqa: E402


class _PurePythonLoader(yaml.SafeLoader):
    source = "?"


_PurePythonLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                  yamlfile._construct_mapping)  # type: ignore[arg-type]


def pure_python(text: str) -> object:
    loader = _PurePythonLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def cpu(func, *args):  # type: ignore[no-untyped-def]
    started = time.process_time()
    result = func(*args)
    return time.process_time() - started, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    entries = parser.parse_args().entries
    data = {"audit": {f"org{o}.onmicrosoft.com": {"users": [f"user{i:06d}@org{o}.onmicrosoft.com"
                                                            for i in range(entries // 10)],
                                                  "groups": [f"Group {i}" for i in range(10)]} for o in range(10)}}
    with tempfile.TemporaryDirectory() as tmp:
        as_yaml = Path(tmp) / "big.yaml"
        as_json = Path(tmp) / "big.json"
        as_yaml.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        as_json.write_text(json.dumps(data), encoding="utf-8")
        text = as_yaml.read_text(encoding="utf-8")
        megabytes = as_yaml.stat().st_size / 1e6
        peer, expected = cpu(pure_python, text)
        ours, loaded = cpu(yamlfile.load_yaml, as_yaml)
        from_json, loaded_json = cpu(yamlfile.load_yaml, as_json)
    assert loaded == expected == loaded_json
    c_parser = "libyaml C parser" if yamlfile.C_PARSER else "pure Python (no libyaml here)"
    print(f"variable file with {entries:,} entries ({megabytes:.1f} MB of YAML):")
    print(f"  vboplan, YAML ({c_parser}, line numbers, bounds checked): {ours:6.2f} s CPU")
    print(f"  peer: PyYAML pure-Python SafeLoader, same line numbers:    {peer:6.2f} s CPU "
          f"({peer / ours:.1f}x vboplan's)")
    print(f"  vboplan, the same data as a .json variable file:          {from_json:6.2f} s CPU")


if __name__ == "__main__":
    main()
