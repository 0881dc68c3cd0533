"""Reading `vllm bench serve` result files and summary tables. Pure functions, no I/O."""
import json
import re

from benchmarks.models import SUMMARY_KEYS

# Keys every result file has (with --percentile-metrics ttft,tpot,itl,e2el and --metric-percentiles
# including 99), whatever the tool's version: without them a repeat cannot be summarised.
REQUIRED_KEYS = ("duration", "completed", "failed", "total_input_tokens", "total_output_tokens",
                 "request_throughput", "output_throughput", "total_token_throughput",
                 "median_ttft_ms", "p99_ttft_ms", "median_tpot_ms", "median_itl_ms")


class ResultFileError(ValueError):
    """A result file that cannot be used; the message says what is wrong and what to check."""


def parse_result_text(text: str, *, source: str = "the result file") -> dict:
    """Parse one result file (the last object when --append-result wrote several lines).

    Raises ResultFileError naming the problem: empty, truncated or malformed JSON, not an
    object, or lacking the figures a summary needs.
    """
    stripped = text.strip()
    if not stripped:
        raise ResultFileError(f"{source} is empty: vllm bench serve stopped before writing its results.")
    last_line = stripped.splitlines()[-1]
    try:
        data = json.loads(last_line)
    except json.JSONDecodeError as exc:
        # A file cut short fails at (or just before) its end; anything else is not the tool's JSON.
        truncated = last_line.startswith("{") and (exc.pos >= len(last_line) - 2 or "Unterminated" in exc.msg)
        what = "truncated" if truncated else "malformed"
        raise ResultFileError(
            f"{source} is not valid JSON ({what}: {exc.msg} at character {exc.pos} of {len(last_line)}). "
            "The tool was probably killed while writing it, or the disk is full; run the repeat again."
        ) from None
    if not isinstance(data, dict):
        raise ResultFileError(f"{source} holds a JSON {type(data).__name__}, not the object vllm bench serve writes.")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ResultFileError(
            f"{source} lacks {', '.join(missing)}: the portal runs the tool with "
            "--percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,90,99; check the workload's extra flags.")
    bad = [key for key in REQUIRED_KEYS if not _is_number(data[key])]
    if bad:
        raise ResultFileError(f"{source} has non-numeric values for {', '.join(bad)}.")
    return data


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def summary_values(data: dict) -> dict[str, float | None]:
    """The headline figures of one parsed result."""
    return {key: float(data[key]) if _is_number(data.get(key)) else None for key in SUMMARY_KEYS}


_ROW = re.compile(r"^(?P<label>[A-Za-z0-9 ()/.\-]+):\s+(?P<value>-?[0-9.]+|inf|nan)\s*$")


def parse_summary_table(stdout: str) -> dict[str, float]:
    """The `Serving Benchmark Result` table printed on stdout, as {row label: value}.

    Used as a fallback witness: a repeat whose file is broken still shows what the tool printed.
    """
    rows: dict[str, float] = {}
    inside = False
    for line in stdout.splitlines():
        if "Serving Benchmark Result" in line:
            inside = True
            continue
        if inside and line.startswith("=" * 10):
            break
        match = _ROW.match(line.rstrip()) if inside else None
        if match:
            rows[match.group("label").strip()] = float(match.group("value"))
    return rows
