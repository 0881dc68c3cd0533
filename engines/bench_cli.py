"""The flags of `vllm bench serve` as data, the argv the portal runs, and a parser built from them.

`vllm_bench_flags.json` comes from `vllm bench serve --help=all` of the engine version the portal
targets (0.33.0). The portal checks a workload's extra flags against it before anything runs,
and the test stand-in parses its argv with the same table.
"""
from __future__ import annotations

import argparse
import json
import shlex
from functools import cache
from pathlib import Path

from engines.vllm_cli import FlagError, FlagParser, typed_by_default

FLAGS_FILE = Path(__file__).with_name("vllm_bench_flags.json")

# Flags the portal sets itself; a workload may not override them through extra flags.
MANAGED_FLAGS = frozenset({
    "--backend", "--base-url", "--host", "--port", "--endpoint", "--model", "--served-model-name", "--tokenizer",
    "--dataset-name", "--random-input-len", "--random-output-len", "--input-len", "--output-len", "--num-prompts",
    "--request-rate", "--burstiness", "--max-concurrency", "--seed", "--temperature", "--num-warmups",
    "--save-result", "--result-dir", "--result-filename", "--append-result", "--percentile-metrics",
    "--metric-percentiles", "--label", "--disable-tqdm",
})
PERCENTILE_METRICS = "ttft,tpot,itl,e2el"
METRIC_PERCENTILES = "50,90,99"


@cache
def load_flags() -> list[dict]:
    return json.loads(FLAGS_FILE.read_text())["flags"]


def known_long_flags() -> set[str]:
    return {name for spec in load_flags() for name in spec["names"] if name.startswith("--")}


_TYPES = {"--num-prompts": int, "--seed": int, "--max-concurrency": int, "--num-warmups": int,
          "--random-input-len": int, "--random-output-len": int, "--request-rate": float, "--temperature": float,
          "--port": int, "--burstiness": float, "--top-p": float, "--top-k": int, "--min-p": float,
          "--ready-check-timeout-sec": int, "--logprobs": int, "--input-len": int, "--output-len": int,
          "--metric-percentiles": str, "--timeline-itl-thresholds": str, "--random-range-ratio": str}


def build_parser(*, prog: str = "vllm bench serve", raise_errors: bool = False) -> argparse.ArgumentParser:
    parser = FlagParser(prog=prog, usage=f"{prog} [options]", raise_errors=raise_errors)
    for spec in load_flags():
        names = spec["names"]
        dest = names[0][2:].replace("-", "_")
        if not spec["takes_value"]:
            positive = [n for n in names if not n.startswith(("--no-", "--disable-"))] or names[:1]
            negative = [n for n in names if n not in positive]
            parser.add_argument(*positive, dest=dest, action="store_true",
                                default=False if spec.get("default") == "False" else None)
            if negative:
                parser.add_argument(*negative, dest=dest, action="store_false")
            continue
        kwargs: dict = {"dest": dest, "type": _TYPES.get(names[0]) or typed_by_default(spec.get("default"))}
        default = spec.get("default")
        kwargs["default"] = None if default in (None, "None") else kwargs["type"](default) \
            if kwargs["type"] is not str else default
        if spec["nargs"]:
            kwargs["nargs"] = spec["nargs"]
        if spec["choices"]:
            kwargs["choices"] = spec["choices"]
            kwargs["type"] = str
        parser.add_argument(*names, **kwargs)
    return parser


def check_extra_args(text: str) -> list[str]:
    """Split a workload's extra flags and check them; raises FlagError with a message that says what to fix."""
    try:
        argv = shlex.split(text or "")
    except ValueError as exc:
        raise FlagError(f"The extra flags cannot be split like a shell line ({exc}): check the quotes.") from None
    if not argv:
        return []
    names = [a.split("=", 1)[0] for a in argv if a.startswith("--")]
    unknown = sorted({n for n in names if n not in known_long_flags()})
    if unknown:
        raise FlagError(f"vllm bench serve does not know {', '.join(unknown)}: remove or fix them "
                        "(see `vllm bench serve --help=all`).")
    managed = sorted({n for n in names if n in MANAGED_FLAGS})
    if managed:
        raise FlagError(f"{', '.join(managed)} are set by the portal from the workload and plan: "
                        "change the workload's fields instead.")
    try:
        build_parser(raise_errors=True).parse_args(argv)
    except FlagError as exc:
        raise FlagError(f"The extra flags are not valid for vllm bench serve: {exc}.") from None
    return argv


def bench_argv(*, executable: str, config: dict, base_url: str, model: str, served_model_name: str,
               tokenizer: str, warmups: int, result_dir: str, result_filename: str, label: str) -> list[str]:
    """The argv of one repeat. Temperature 0 unless the workload says otherwise: since 0.33 the
    tool no longer sets greedy sampling itself, and sampling noise would leak into the numbers."""
    rate = config.get("request_rate")
    argv = [executable, "bench", "serve",
            "--backend", config["backend"], "--base-url", base_url, "--endpoint", config["endpoint"],
            "--model", model, "--served-model-name", served_model_name, "--tokenizer", tokenizer,
            "--dataset-name", config["dataset_name"],
            "--random-input-len", str(config["input_len"]), "--random-output-len", str(config["output_len"]),
            "--num-prompts", str(config["num_prompts"]),
            "--request-rate", "inf" if rate is None else f"{rate:g}",
            "--burstiness", f"{config.get('burstiness', 1.0):g}", "--seed", str(config.get("seed", 0)),
            "--num-warmups", str(warmups),
            "--percentile-metrics", PERCENTILE_METRICS, "--metric-percentiles", METRIC_PERCENTILES,
            "--save-result", "--result-dir", result_dir, "--result-filename", result_filename,
            "--label", label, "--disable-tqdm"]
    if config.get("max_concurrency"):
        argv += ["--max-concurrency", str(config["max_concurrency"])]
    if config.get("temperature") is not None:
        argv += ["--temperature", f"{config['temperature']:g}"]
    argv += shlex.split(config.get("extra_args") or "")
    return argv
