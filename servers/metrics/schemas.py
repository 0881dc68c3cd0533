"""Schemas of the engine-metric history endpoint."""
from datetime import datetime

from ninja import Schema
from pydantic import Field


class MetricSampleOut(Schema):
    server_id: int
    at: datetime
    resolution_s: int = Field(description="0: one scrape interval; 60: the average of one minute's scrapes.")
    interval_s: float | None
    generation_tps: float | None
    prompt_tps: float | None
    requests_per_s: float | None
    prefix_cache_hit_rate: float | None
    running: float | None
    waiting: float | None
    kv_cache_usage: float | None = Field(description="Fraction 0-1.")
    ttft_mean_s: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    tpot_mean_s: float | None
    itl_mean_s: float | None
    itl_p50_s: float | None
    itl_p95_s: float | None
    e2e_mean_s: float | None
    e2e_p50_s: float | None
    e2e_p95_s: float | None


class MetricFilter(Schema):
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(1000, ge=1, le=20000)
