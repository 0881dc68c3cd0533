"""The command-line flags of `vllm serve`, as data, and an argparse parser built from them.

`vllm serve --help` cannot run on a machine without a GPU (it crashes inferring the device),
so the portal keeps the flag list of the engine version it targets in `vllm_serve_flags.json`,
derived from `vllm serve --help=all`. Regenerate it for a new vLLM release with:

    python -m engines.vllm_cli path/to/vllm_serve_help_all.txt > engines/vllm_serve_flags.json

This module is pure standard library: the supervisor uses it to check a profile's extra flags
before spawning anything, and the test stand-in for vLLM parses its argv with the same table.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from functools import cache
from pathlib import Path

FLAGS_FILE = Path(__file__).with_name("vllm_serve_flags.json")

# An option header in argparse help: two spaces, then options, then (after 2+ spaces) the text.
_HEADER = re.compile(r"^  (-{1,2}[A-Za-z0-9][^\s,]*.*?)(?:\s{2,}(.*))?$")
_OPTION = re.compile(
    r"(?P<name>-{1,2}[A-Za-z0-9][A-Za-z0-9_.-]*)"
    r"(?: (?P<value>\{[^}]*\}(?: \[\{[^}]*\} \.\.\.\])?(?: or name registered in \S+)?"
    r"|\['[^\]]*\]|\[[A-Z][A-Z0-9_]*\]|[A-Z][A-Z0-9_]*(?: \[[A-Z][A-Z0-9_]* \.\.\.\])?))?"
)
_DEFAULT = re.compile(r"\(default: (.*)\)\s*$")


def parse_help_text(text: str) -> list[dict]:
    """Turn `vllm serve --help=all` output into a list of flag specs.

    Each spec: {"names": [...], "takes_value": bool, "nargs": None|"?"|"+", "choices": [...]|None,
    "default": "<text after (default: ...)>" | None}.
    """
    specs: list[dict] = []
    current: dict | None = None
    for line in text.splitlines():
        match = _HEADER.match(line)
        if match and not line.startswith("   "):
            header, rest = match.group(1), match.group(2) or ""
            current = _spec_from_header(header)
            if current is not None:
                specs.append(current)
                _take_default(current, rest)
            continue
        if current is not None and line.startswith("   "):
            _take_default(current, line)
        elif not line.startswith("   "):
            current = None
    return specs


def _take_default(spec: dict, text: str) -> None:
    match = _DEFAULT.search(text)
    if match:
        spec["default"] = match.group(1)


def _spec_from_header(header: str) -> dict | None:
    names: list[str] = []
    value = None
    for match in _OPTION.finditer(header):
        names.append(match.group("name"))
        value = value or match.group("value")
    if not names or "--help" in names:
        return None
    spec: dict = {"names": names, "takes_value": value is not None, "nargs": None, "choices": None, "default": None}
    if value is None:
        return spec
    if value.endswith("...]"):
        spec["nargs"] = "+"
    elif value.startswith("[") and not value.startswith("['"):
        spec["nargs"] = "?"
    if value.startswith("{") and "or name registered" not in value:
        spec["choices"] = value[1:value.index("}")].split(",")
    elif value.startswith("['"):
        spec["choices"] = re.findall(r"'([^']*)'", value)
    return spec


@cache
def load_flags() -> list[dict]:
    return json.loads(FLAGS_FILE.read_text())["flags"]


def engine_version() -> str:
    return json.loads(FLAGS_FILE.read_text())["version"]


def typed_by_default(default: str | None):
    """vLLM declares int/float flags with typed defaults; reproduce the type check for those."""
    if default is None:
        return str
    if re.fullmatch(r"-?\d+", default):
        return int
    if re.fullmatch(r"-?\d+\.\d*|inf", default):
        return float
    return str


# Flags whose help default is None but whose type matters for error messages.
_TYPES = {"--port": int, "--max-num-seqs": int, "--max-num-batched-tokens": int, "--seed": int,
          "--gpu-memory-utilization": float, "--tensor-parallel-size": int, "--pipeline-parallel-size": int,
          "--data-parallel-size": int}


class FlagError(ValueError):
    """Raised by a parser built with `raise_errors=True` for an unknown or malformed flag."""


class FlagParser(argparse.ArgumentParser):
    def __init__(self, *args, raise_errors: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._raise_errors = raise_errors

    def error(self, message: str):  # argparse calls this for every user error
        if self._raise_errors:
            raise FlagError(message)
        super().error(message)


def build_parser(*, prog: str = "vllm serve", raise_errors: bool = False) -> argparse.ArgumentParser:
    """An argparse parser with every `vllm serve` flag and the optional positional model tag."""
    parser = FlagParser(prog=prog, usage=f"{prog} [model_tag] [options]", add_help=True, raise_errors=raise_errors)
    parser.add_argument("model_tag", nargs="?", default=None)
    for spec in load_flags():
        names = spec["names"]
        long_names = [n for n in names if n.startswith("--")]
        dest = long_names[0][2:].replace("-", "_")
        if not spec["takes_value"]:
            positive = [n for n in names if not n.startswith(("--disable-", "--no-"))] or names[:1]
            negative = [n for n in names if n not in positive]
            parser.add_argument(*positive, dest=dest, action="store_true", default=None)
            if negative:
                parser.add_argument(*negative, dest=dest, action="store_false")
            continue
        kind = _TYPES.get(long_names[0]) or typed_by_default(spec.get("default"))
        kwargs: dict = {"dest": dest, "default": None, "type": kind}
        if spec["nargs"]:
            kwargs["nargs"] = spec["nargs"]
        if spec["choices"]:
            kwargs["choices"] = spec["choices"]
            kwargs["type"] = str
        parser.add_argument(*names, **kwargs)
    return parser


def normalize(argv: list[str]) -> list[str]:
    """vLLM's FlexibleArgumentParser accepts `--max_model_len` for `--max-model-len`."""
    out = []
    for arg in argv:
        if arg.startswith("--") and "_" in arg.split("=", 1)[0]:
            key, sep, value = arg.partition("=")
            arg = key.replace("_", "-") + sep + value
        out.append(arg)
    return out


def choices(flag: str) -> list[str]:
    """The values a flag accepts, as the table lists them ([] when it takes any value)."""
    for spec in load_flags():
        if flag in spec["names"]:
            return list(spec["choices"] or [])
    return []


def known_long_flags() -> set[str]:
    return {name for spec in load_flags() for name in spec["names"] if name.startswith("--")}


def main(argv: list[str]) -> int:
    text = Path(argv[0]).read_text()
    version = argv[1] if len(argv) > 1 else "0.33.0"
    json.dump({"version": version, "source": "vllm serve --help=all", "flags": parse_help_text(text)},
              sys.stdout, indent=0)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
