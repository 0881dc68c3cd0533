"""Result files and summary tables of `vllm bench serve`; broken files fail with a clear message."""
import json

import pytest

from benchmarks.parsing import ResultFileError, parse_result_text, parse_summary_table, summary_values
from tests.benchmarks.test_statistics import REFERENCE


def test_it_reads_both_reference_result_files():
    detailed = parse_result_text((REFERENCE / "bench_serve_result.json").read_text())
    assert summary_values(detailed)["output_throughput"] == pytest.approx(70.16910315742781)
    assert summary_values(detailed)["median_e2el_ms"] == pytest.approx(2307.6058209999246)
    plain = (REFERENCE / "bench_serve_result_not_detailed.json").read_text()
    # Without e2el in --percentile-metrics the tool writes no e2el figures: the portal asks for them.
    with pytest.raises(ResultFileError, match="lacks median_tpot_ms|lacks"):
        parse_result_text(json.dumps({k: v for k, v in json.loads(plain).items() if "tpot" not in k}))
    assert summary_values(parse_result_text(plain))["median_e2el_ms"] is None


def test_appended_results_use_the_last_object():
    text = (REFERENCE / "bench_serve_result_not_detailed.json").read_text().strip()
    second = json.loads(text) | {"output_throughput": 1.5}
    assert parse_result_text(text + "\n" + json.dumps(second))["output_throughput"] == 1.5


def test_a_truncated_file_says_so():
    text = (REFERENCE / "bench_serve_result.json").read_text()
    with pytest.raises(ResultFileError) as err:
        parse_result_text(text[: len(text) // 2], source="The result file of repeat 2")
    assert str(err.value).startswith("The result file of repeat 2 is not valid JSON (truncated")
    assert "run the repeat again" in str(err.value)


@pytest.mark.parametrize(("text", "message"), [
    ("", "is empty: vllm bench serve stopped before writing its results"),
    ("Traceback (most recent call last):", "is not valid JSON (malformed"),
    ("[1, 2]", "holds a JSON list, not the object"),
    ('{"completed": 3}', "lacks duration, failed"),
])
def test_broken_files_get_a_message_that_says_what_is_wrong(text, message):
    with pytest.raises(ResultFileError, match=message.replace("(", r"\(")):
        parse_result_text(text)


def test_it_reads_the_printed_summary_table():
    rows = parse_summary_table((REFERENCE / "bench_serve_stdout.txt").read_text())
    assert rows["Successful requests"] == 10
    assert rows["Output token throughput (tok/s)"] == 70.17
    assert rows["P99 E2EL (ms)"] == 2415.69
    assert len(rows) == 31  # 11 totals + 4 metrics x (mean, median, P50, P90, P99)
