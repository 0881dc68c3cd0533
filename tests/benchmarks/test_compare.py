"""The comparison table warns in words about everything that makes numbers incomparable."""
import csv
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from accounts.services import api_key_create
from benchmarks.selectors import compare
from tests.benchmarks.factories import ProfileFactory, RunFactory, SummaryFactory

pytestmark = pytest.mark.django_db


def test_it_warns_on_dtype_and_max_model_len_asymmetry():
    # The field notes' v1 mistake: one Qwen profile on dtype=auto and max_model_len=8192.
    a = SummaryFactory(profile=ProfileFactory(name="qwen35-coder-35b", dtype="bfloat16", max_model_len=32768))
    b = SummaryFactory(profile=ProfileFactory(name="qwen36-35b-a3b", dtype="auto", max_model_len=8192))
    warnings = compare(run_ids=[a.run_id, b.run_id])["warnings"]
    assert any(w.startswith("dtype differs (bfloat16 for qwen35-coder-35b") and "auto for qwen36-35b-a3b" in w
               for w in warnings), warnings
    assert any(w.startswith("max_model_len differs (32768 for qwen35-coder-35b") and "8192 for qwen36-35b-a3b" in w
               for w in warnings), warnings


def test_aligned_profiles_compare_without_warnings():
    run = RunFactory()
    SummaryFactory(run=run, profile=ProfileFactory(name="glm47-flash"))
    SummaryFactory(run=run, profile=ProfileFactory(name="gemma4-31b-it"), position=1)
    assert compare(run_ids=[run.pk])["warnings"] == []


def test_it_warns_on_warmups_engine_node_quantization_workload_and_spread():
    a = SummaryFactory(engine_version="0.33.0", node_name="spark-1")
    b = SummaryFactory(engine_version="0.32.1", node_name="spark-2",
                       profile=ProfileFactory(name="awq", quantization="awq"),
                       facts={"dtype": "bfloat16", "max_model_len": 4096, "quantization": "awq", "warmups": 0},
                       run=RunFactory(config={"warmups": 0, "repeats": 3, "tool": "vllm",
                                              "workload": {"name": "short", "input_len": 128, "output_len": 64}}),
                       spread={"output_throughput": 7.5}, spread_pct=7.5)
    text = "\n".join(compare(run_ids=[a.run_id, b.run_id])["warnings"])
    assert "warm-ups differ (5 for" in text
    assert "engine version differs (0.33.0 for" in text
    assert "the runs used different nodes (spark-1 for" in text
    assert "quantization differs (none for" in text
    assert "the workload differs between runs" in text
    assert f"awq (run {b.run_id}): output tok/s spread 7.5% between repeats is above 5%" in text


def test_api_compare_and_export(operator_user):
    a = SummaryFactory(profile=ProfileFactory(name="glm47-flash"), output_throughput=337.2)
    b = SummaryFactory(profile=ProfileFactory(name="gemma4-31b-it", dtype="auto"), output_throughput=81.5)
    _key, raw = api_key_create(owner=operator_user, name="t")
    client = Client(headers={"X-API-Key": raw})
    api = "/api/benchmarks"
    body = client.get(f"{api}/compare?runs={a.run_id},{b.run_id}").json()
    assert [r["profile"] for r in body["rows"]] == ["glm47-flash", "gemma4-31b-it"]
    assert any("dtype differs" in w for w in body["warnings"])
    rows = list(csv.DictReader(io.StringIO(client.get(f"{api}/export?runs={a.run_id},{b.run_id}").content.decode())))
    assert [(r["profile"], float(r["output_throughput"])) for r in rows] == [("glm47-flash", 337.2),
                                                                          ("gemma4-31b-it", 81.5)]
    exported = json.loads(client.get(f"{api}/export?runs={a.run_id}&format=json").content)
    assert exported[0]["median_ttft_ms"] == 8100.0
    bad = client.get(f"{api}/export?runs=1,x")
    assert bad.status_code == 400
    assert bad.json()["detail"] == "Give run ids as numbers separated by commas, e.g. 3,7 (got '1,x')."
    assert client.get(f"{api}/export?runs={a.run_id}&format=xml").json()["detail"] == \
        "Unknown export format 'xml': use csv or json."


def test_cli_compare_prints_the_table_and_warnings():
    a = SummaryFactory(profile=ProfileFactory(name="glm47-flash"))
    b = SummaryFactory(profile=ProfileFactory(name="gemma4-31b-it", max_model_len=8192))
    out = io.StringIO()
    call_command("bench", "compare", str(a.run_id), str(b.run_id), stdout=out)
    text = out.getvalue()
    assert "glm47-flash" in text and "gemma4-31b-it" in text and "output tok/s" in text
    assert "warning: max_model_len differs (4096 for glm47-flash" in text
    with pytest.raises(CommandError, match="No results for run"):
        call_command("bench", "compare", "99999", stdout=io.StringIO())


def test_only_the_newest_raw_results_are_kept_per_profile():
    from benchmarks.models import BenchmarkResult
    from benchmarks.services import results_prune

    profile = ProfileFactory(name="glm47-flash")
    other = SummaryFactory(profile=ProfileFactory(name="gemma4-31b-it"))
    BenchmarkResult.objects.create(summary=other, profile=other.profile, repeat=1, status="ok")
    for run_index in range(3):
        summary = SummaryFactory(profile=profile)
        for repeat in (1, 2, 3):
            BenchmarkResult.objects.create(summary=summary, profile=profile, repeat=repeat, status="ok",
                                           raw={"output_throughput": run_index * 10 + repeat})
    assert results_prune(profile_id=profile.pk, keep=4) == 5
    kept = BenchmarkResult.objects.filter(profile=profile).order_by("-id")
    assert [r.raw["output_throughput"] for r in kept] == [23, 22, 21, 13]
    assert BenchmarkResult.objects.filter(profile=other.profile).count() == 1


def test_it_shows_and_warns_on_placement_differences(client, operator_user):
    one = SummaryFactory(node_name="spark-1", facts={"placement": "1 node(s) (spark-1), tensor parallel 1, pipeline "
                                                                  "parallel 1"})
    two = SummaryFactory(node_name="spark-1", profile=ProfileFactory(name="big-pp2"),
                         facts={"placement": "2 node(s) (spark-1, spark-2), tensor parallel 1, pipeline parallel 2"})
    same = SummaryFactory(node_name="spark-3", facts={"placement": "1 node(s) (spark-3), tensor parallel 1, "
                                                                   "pipeline parallel 1"})
    table = compare(run_ids=[one.run_id, two.run_id])
    warning = next(w for w in table["warnings"] if w.startswith("the placement differs"))
    assert "1 node(s), tensor parallel 1, pipeline parallel 1 for" in warning
    assert "2 node(s), tensor parallel 1, pipeline parallel 2 for big-pp2" in warning
    assert "pipeline parallel helps batched traffic" in warning
    assert table["dicts"][1]["placement"].startswith("2 node(s) (spark-1, spark-2)")
    # The same split on another box is no placement difference (the node check says that).
    assert not any("placement" in w for w in compare(run_ids=[one.run_id, same.run_id])["warnings"])
    client.force_login(operator_user)
    page = client.get(f"/benchmarks/compare/?runs={one.run_id},{two.run_id}").content.decode()
    assert "2 node(s) (spark-1, spark-2), tensor parallel 1, pipeline parallel 2" in page
    assert "the placement differs" in page
