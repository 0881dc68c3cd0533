"""A stand-in for `text-embeddings-router` (Text Embeddings Inference 1.9.3) for machines without a GPU.

Run through the fake executable `tests/fakes/bin/text-embeddings-router`, set as a test node's TEI
executable, so the portal cannot tell it apart from the real router. It follows the shared TEI
reference and TEI's `router/src/main.rs`:

- parses the router's real flags the way clap does, **each falling back to an environment variable
  of the same name upper-cased** (`--port` <- `PORT`, `--hostname` <- `HOSTNAME`, `--model-id` <-
  `MODEL_ID`, ...; an empty variable counts as unset); unknown flags, bad values, a missing
  `--model-id` and conflicting flags exit 2 with clap's messages; `--version` prints
  `text-embeddings-router 1.9.3`;
- logs like tracing-subscriber (text, or JSON lines with `--json-output`): the Args line, `Starting
  model backend`, `Warming up model`, then `Starting HTTP server: ADDR` and `Ready`; the port is bound
  only after warm-up, and a taken port ends the process with `Error: Could not bind TCP Listener on
  ADDR` / `Address already in use (os error 98)`; an unparsable `--hostname` falls back to 0.0.0.0
  with a warning, as TEI does;
- serves GET /health (also `/` and /ping), /info, /metrics; POST /embed, /rerank, /v1/embeddings (and
  /embeddings) with TEI's bodies, errors, status codes and `x-*` timing headers; `--api-key` guards
  everything but /health, /ping and /metrics (see tests/fakes/tei_http.py);
- exposes TEI's metric names (metrics-exporter-prometheus text: counters without `_total`, a family
  appears once first touched, TEI's duration and input-length buckets), moving as it serves;
- on SIGTERM logs `signal received, starting graceful shutdown` and exits 0.

Environment knobs (all optional; TEI itself reads none of these names):

FAKE_TEI_STARTUP_DELAY_S   seconds spent "loading and warming up" before the port is bound (default 0.2)
FAKE_TEI_MODEL_TYPE        embedding | reranker (default: reranker when the model id contains "rerank")
FAKE_TEI_DIM               embedding size (default 384)
FAKE_TEI_MAX_INPUT_LENGTH  the model's maximum tokens per input (default 512)
FAKE_TEI_INFERENCE_S       seconds one batch takes on the "GPU" (default 0.002)
"""
from __future__ import annotations

import datetime
import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field

VERSION = "1.9.3"
GIT_SHA = "0d124dc9773be6ac5a9a57d8439aba9bbbf33273"
PROG = "text-embeddings-router"
USAGE = f"Usage: {PROG} [OPTIONS] --model-id <MODEL_ID>"


@dataclass(frozen=True)
class Flag:
    name: str  # the long name without dashes, as in main.rs (`model_id`)
    kind: str  # str | usize | u16 | switch | optional-bool | list
    default: str | None = None
    choices: tuple[str, ...] = ()
    short: str | None = None
    conflicts: str | None = None

    @property
    def long(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return self.name.upper()

    @property
    def shown(self) -> str:
        return self.long if self.kind == "switch" else f"{self.long} <{self.env}>"


# router/src/main.rs of TEI 1.9.3: every flag is `#[clap(long, env)]`.
FLAGS = [
    Flag("model_id", "str"), Flag("revision", "str"), Flag("tokenization_workers", "usize"),
    Flag("dtype", "str", choices=("float16", "float32")), Flag("served_model_name", "str"),
    Flag("pooling", "str", choices=("cls", "mean", "splade", "last-token")),
    Flag("max_concurrent_requests", "usize", "512"), Flag("max_batch_tokens", "usize", "16384"),
    Flag("max_batch_requests", "usize"), Flag("max_client_batch_size", "usize", "32"),
    Flag("auto_truncate", "optional-bool", "true"),
    Flag("default_prompt_name", "str", conflicts="default_prompt"),
    Flag("default_prompt", "str", conflicts="default_prompt_name"), Flag("dense_path", "str"),
    Flag("hf_api_token", "str"), Flag("hf_token", "str", conflicts="hf_api_token"),
    Flag("hostname", "str", "0.0.0.0"), Flag("port", "u16", "3000", short="-p"),
    Flag("uds_path", "str", "/tmp/text-embeddings-inference-server"), Flag("huggingface_hub_cache", "str"),
    Flag("payload_limit", "usize", "2000000"), Flag("api_key", "str"), Flag("json_output", "switch"),
    Flag("disable_spans", "switch"), Flag("otlp_endpoint", "str"),
    Flag("otlp_service_name", "str", "text-embeddings-inference.server"), Flag("prometheus_port", "u16", "9000"),
    Flag("cors_allow_origin", "list"),
]
BY_LONG = {flag.long: flag for flag in FLAGS} | {flag.short: flag for flag in FLAGS if flag.short}


class ClapError(Exception):
    def __init__(self, message: str, *, usage: bool = False):
        super().__init__(message)
        self.usage = usage


def _convert(flag: Flag, raw: str):
    if flag.kind in ("usize", "u16"):
        try:
            value = int(raw)
        except ValueError:
            reason = "cannot parse integer from empty string" if raw == "" else "invalid digit found in string"
            raise ClapError(f"invalid value '{raw}' for '{flag.shown}': {reason}") from None
        if value < 0 or (flag.kind == "u16" and value > 65535):
            raise ClapError(f"invalid value '{raw}' for '{flag.shown}': "
                            f"{'65535' if flag.kind == 'u16' else '0'} is the limit")
        return value
    if flag.kind == "optional-bool":
        if raw not in ("true", "false"):
            raise ClapError(f"invalid value '{raw}' for '{flag.shown}'\n  [possible values: true, false]")
        return raw == "true"
    if flag.choices and raw not in flag.choices:
        raise ClapError(f"invalid value '{raw}' for '{flag.shown}'\n  [possible values: {', '.join(flag.choices)}]")
    return raw


def parse_args(argv: list[str], environ: dict) -> dict:
    """clap's behaviour for this Args struct: command line first, then the same-named env var, then the default."""
    given: dict[str, object] = {}
    index = 0
    while index < len(argv):
        token = argv[index]
        name, eq, inline = token.partition("=") if token.startswith("--") else (token, "", "")
        flag = BY_LONG.get(name)
        if flag is None:
            raise ClapError(f"unexpected argument '{token}' found", usage=True)
        if flag.name in given and flag.kind != "list":
            raise ClapError(f"the argument '{flag.shown}' cannot be used multiple times", usage=True)
        index += 1
        if flag.kind == "switch":
            if eq:
                raise ClapError(f"unexpected value '{inline}' for '{flag.long}' found; no more were expected",
                                usage=True)
            given[flag.name] = True
            continue
        if eq:
            raw = inline
        elif flag.kind == "optional-bool" and (index >= len(argv) or argv[index].startswith("-")):
            raw = "true"  # default_missing_value
        elif index < len(argv) and not (argv[index].startswith("-") and len(argv[index]) > 1):
            raw, index = argv[index], index + 1
        else:
            raise ClapError(f"a value is required for '{flag.shown}' but none was supplied")
        value = _convert(flag, raw)
        if flag.kind == "list":
            given.setdefault(flag.name, []).append(value)  # type: ignore[union-attr]
        else:
            given[flag.name] = value
    args: dict[str, object] = {}
    for flag in FLAGS:
        if flag.name in given:
            args[flag.name] = given[flag.name]
            continue
        raw = environ.get(flag.env, "")
        if raw != "":
            if flag.kind == "switch":  # clap's FalseyValueParser for SetTrue flags read from the environment
                args[flag.name] = raw.lower() not in ("n", "no", "f", "false", "off", "0")
            elif flag.kind == "list":
                args[flag.name] = [raw]
            else:
                args[flag.name] = _convert(flag, raw)
        elif flag.kind == "switch":
            args[flag.name] = False
        else:
            args[flag.name] = _convert(flag, flag.default) if flag.default is not None else None
    if args["model_id"] is None:
        raise ClapError("the following required arguments were not provided:\n  --model-id <MODEL_ID>", usage=True)
    for flag in FLAGS:
        other = flag.conflicts
        if other and args[flag.name] is not None and args[other] is not None:
            raise ClapError(f"the argument '{flag.shown}' cannot be used with "
                            f"'{BY_LONG['--' + other.replace('_', '-')].shown}'", usage=True)
    return args


# --- logging (tracing-subscriber fmt layer with file and line; JSON with --json-output) -------------------------

@dataclass
class Logger:
    json_output: bool = False
    stream: object = field(default_factory=lambda: sys.stdout)

    def __call__(self, level: str, target: str, where: str, message: str) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        filename, _, line = where.rpartition(":")
        if self.json_output:
            record = {"timestamp": now, "level": level, "message": message, "target": target,
                      "filename": filename, "line_number": int(line)}
            text = json.dumps(record, separators=(",", ":"))
        else:
            text = f"{now} {level:>5} {target}: {where}: {message}"
        self.stream.write(text + "\n")
        self.stream.flush()


def _redacted(value: object) -> str:
    """veil's partial redaction of the model id and tokens: keep separators, hide the rest."""
    text = str(value)
    return "".join(c if not c.isalnum() or i < 3 else "*" for i, c in enumerate(text))


def args_debug(args: dict) -> str:
    def show(name: str, value: object) -> str:
        if value is None:
            return "None"
        if name in ("model_id", "hf_token", "hf_api_token") and isinstance(value, str):
            return f'"{_redacted(value)}"'
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return f'Some("{value}")' if FLAG_BY_NAME[name].default is None else f'"{value}"'
        if isinstance(value, list):
            return "Some([" + ", ".join(f'"{v}"' for v in value) + "])"
        return f"Some({value})" if FLAG_BY_NAME[name].default is None else str(value)

    return "Args { " + ", ".join(f"{name}: {show(name, value)}" for name, value in args.items()) + " }"


FLAG_BY_NAME = {flag.name: flag for flag in FLAGS}


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def bind(host: str, port: int, log: Logger) -> tuple[socket.socket, str]:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        log("WARN", "text_embeddings_router", "router/src/lib.rs:367", "Invalid hostname, defaulting to 0.0.0.0")
        host = "0.0.0.0"
    addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        sys.stderr.write(f"Error: Could not bind TCP Listener on {addr}\n\nCaused by:\n    "
                         f"{exc.strerror} (os error {exc.errno})\n")
        sys.exit(1)
    return sock, addr


def main(argv: list[str]) -> int:
    if argv[:1] in (["--version"], ["-V"]):
        print(f"{PROG} {VERSION}")
        return 0
    if argv[:1] in (["--help"], ["-h"]):
        print(f"Text Embedding Webserver\n\n{USAGE}\n\nOptions:\n" +
              "\n".join(f"      {flag.shown}\n          [env: {flag.env}=]" for flag in FLAGS))
        return 0
    try:
        args = parse_args(argv, dict(os.environ))
    except ClapError as exc:
        sys.stderr.write(f"error: {exc}\n\n" + (f"{USAGE}\n\n" if exc.usage else "") +
                         "For more information, try '--help'.\n")
        return 2
    log = Logger(json_output=bool(args["json_output"]))
    log("INFO", "text_embeddings_router", "router/src/main.rs:216", args_debug(args))
    max_input_length = int(_env_float("FAKE_TEI_MAX_INPUT_LENGTH", 512))
    log("INFO", "text_embeddings_router", "router/src/lib.rs:234",
        f"Maximum number of tokens per request: {max_input_length}")
    log("INFO", "text_embeddings_core::tokenization", "core/src/tokenization.rs:38",
        f"Starting {args['tokenization_workers'] or max(1, min(64, (os.cpu_count() or 2) - 1))} tokenization workers")
    delay = _env_float("FAKE_TEI_STARTUP_DELAY_S", 0.2)
    from tests.fakes import tei_http  # the "backend" loads before the port is bound, as in TEI
    log("INFO", "text_embeddings_router", "router/src/lib.rs:284", "Starting model backend")
    time.sleep(delay / 2)
    log("INFO", "text_embeddings_router", "router/src/lib.rs:302", "Warming up model")
    time.sleep(delay / 2)
    sock, addr = bind(str(args["hostname"]), int(args["port"]), log)  # type: ignore[arg-type]
    return tei_http.serve(args, sock=sock, addr=addr, log=log, max_input_length=max_input_length)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
