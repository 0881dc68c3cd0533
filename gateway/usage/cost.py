"""The arithmetic of the Cost view: what the ledger's tokens would have cost on a paid API, the
electricity a node used, and when the hardware pays for itself. Pure functions on plain numbers
(times are epoch seconds); gateway.selectors feeds them from the database.

Energy of a node over a window, in three kinds of time:

1. Between two consecutive GPU samples that both carry a power reading (and are at most
   `max_gap_s` apart) the power is taken as linear: the trapezoid rule.
2. Between two such samples without a power reading but with a utilization reading, the node
   counts as under load (`load_w`) when their mean utilization is at least LOAD_UTILIZATION_PCT,
   else as idle (`idle_w`).
3. Everything else (no samples, samples further apart than `max_gap_s`, nothing read) falls back
   to the ledger: under load while a gateway request was running on one of the node's servers,
   idle otherwise. Samples are kept only PORTAL_SAMPLE_RETENTION_HOURS, so older months are
   mostly estimated this way; the page says how much was measured.
"""
from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

LOAD_UTILIZATION_PCT = 10.0
DAYS_PER_MONTH = 365.25 / 12
MILLION = Decimal(1_000_000)

# Per 1M input / output / cached input tokens, USD: the field notes' table (April 2026); cached input at the
# vendors' discount (OpenAI: half of GPT-4o mini's input price, a tenth of GPT-5's; Anthropic's cache reads:
# a tenth of the input price).
DEFAULT_PRICES = [
    ("GPT-4o mini", Decimal("0.15"), Decimal("0.60"), Decimal("0.075")),
    ("GPT-5", Decimal("3"), Decimal("15"), Decimal("0.30")),
    ("Claude Sonnet 4.6", Decimal("3"), Decimal("15"), Decimal("0.30")),
    ("Claude Opus 4.7", Decimal("15"), Decimal("75"), Decimal("1.50")),
]


@dataclass(frozen=True)
class Sample:
    at: float
    power_w: float | None
    utilization_pct: float | None


def sample_of(at: float, gpus: list) -> Sample:
    """A NodeSample's GPUs summed: power of those that report it, the mean utilization of those that do."""
    powers, utils = [], []
    for gpu in gpus if isinstance(gpus, list) else ():
        if not isinstance(gpu, dict):
            continue
        power, util = gpu.get("power_w"), gpu.get("utilization_pct")
        if isinstance(power, int | float) and not isinstance(power, bool):
            powers.append(float(power))
        if isinstance(util, int | float) and not isinstance(util, bool):
            utils.append(float(util))
    return Sample(at, sum(powers) if powers else None, sum(utils) / len(utils) if utils else None)


@dataclass
class Energy:
    measured_wh: float = 0.0
    estimated_wh: float = 0.0
    measured_s: float = 0.0
    estimated_s: float = 0.0

    @property
    def kwh(self) -> float:
        return (self.measured_wh + self.estimated_wh) / 1000

    @property
    def measured_share(self) -> float:
        total = self.measured_s + self.estimated_s
        return self.measured_s / total if total else 0.0

    @property
    def measured_pct(self) -> float:
        return self.measured_share * 100

    def __add__(self, other: Energy) -> Energy:
        return Energy(self.measured_wh + other.measured_wh, self.estimated_wh + other.estimated_wh,
                      self.measured_s + other.measured_s, self.estimated_s + other.estimated_s)


def merge(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping or touching spans joined, sorted by start."""
    out: list[list[float]] = []
    for start, end in sorted(spans):
        if end <= start:
            continue
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


def overlap(spans: Sequence[tuple[float, float]], start: float, end: float,
            ends: Sequence[float] | None = None) -> float:
    """Seconds of merged, sorted `spans` inside [start, end); `ends` (their ends) skips the earlier ones."""
    total = 0.0
    i = bisect.bisect_right(ends if ends is not None else [b for _, b in spans], start)
    for a, b in spans[i:]:
        if a >= end:
            break
        total += min(b, end) - max(a, start)
    return total


def energy(samples: Sequence[Sample], *, start: float, end: float, busy: Sequence[tuple[float, float]],
           load_w: float, idle_w: float, max_gap_s: float) -> Energy:
    """The energy of one node over [start, end): see the module docstring for the rules.

    `samples` sorted by time (one before `start` and one after `end` let the edges be integrated);
    `busy` the merged spans during which gateway requests ran on the node.
    """
    result = Energy()
    if end <= start:
        return result
    covered: list[tuple[float, float]] = []
    for a, b in zip(samples, samples[1:], strict=False):
        if b.at - a.at > max_gap_s or b.at <= a.at:
            continue
        u, v = max(a.at, start), min(b.at, end)
        if v <= u:
            continue
        if a.power_w is not None and b.power_w is not None:
            slope = (b.power_w - a.power_w) / (b.at - a.at)
            pu, pv = a.power_w + slope * (u - a.at), a.power_w + slope * (v - a.at)
            result.measured_wh += (pu + pv) / 2 * (v - u) / 3600
            result.measured_s += v - u
        elif a.utilization_pct is not None and b.utilization_pct is not None:
            loaded = (a.utilization_pct + b.utilization_pct) / 2 >= LOAD_UTILIZATION_PCT
            result.estimated_wh += (load_w if loaded else idle_w) * (v - u) / 3600
            result.estimated_s += v - u
        else:
            continue
        covered.append((u, v))
    ends = [b for _, b in busy]
    cursor = start
    for u, v in merge(covered) + [(end, end)]:
        if u > cursor:
            busy_s = overlap(busy, cursor, u, ends)
            result.estimated_wh += (busy_s * load_w + (u - cursor - busy_s) * idle_w) / 3600
            result.estimated_s += u - cursor
        cursor = max(cursor, v)
    return result


def money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def api_cost(*, prompt_tokens: int, completion_tokens: int, input_per_million: Decimal,
             output_per_million: Decimal, cached_tokens: int = 0,
             cached_input_per_million: Decimal | None = None) -> Decimal:
    """Prompt tokens the prefix cache held are priced at the cached-input price (the input price when none)."""
    cached = min(cached_tokens, prompt_tokens)
    cached_price = input_per_million if cached_input_per_million is None else cached_input_per_million
    return (Decimal(prompt_tokens - cached) * input_per_million + Decimal(cached) * cached_price
            + Decimal(completion_tokens) * output_per_million) / MILLION


def electricity_cost(*, kwh: float, per_kwh: Decimal) -> Decimal:
    return Decimal(str(round(kwh, 6))) * per_kwh


@dataclass(frozen=True)
class BreakEven:
    api_per_month: Decimal
    electricity_per_month: Decimal
    saving_per_month: Decimal
    months: Decimal | None  # None: the hardware never pays for itself at this usage


def break_even(*, api_total: Decimal, electricity_total: Decimal, days: float, hardware_cost: Decimal) -> BreakEven:
    """Months until `hardware_cost` is saved, at the rate of the `days` the totals cover."""
    scale = Decimal(str(DAYS_PER_MONTH)) / Decimal(str(max(days, 1e-9)))
    api, power = api_total * scale, electricity_total * scale
    saving = api - power
    months = (hardware_cost / saving).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP) if saving > 0 else None
    return BreakEven(money(api), money(power), money(saving), months)
