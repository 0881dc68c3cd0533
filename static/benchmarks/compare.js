// Charts of the comparison page: throughput and TTFT per model, history of output tok/s per profile.
(function () {
  const rows = JSON.parse(document.getElementById("compare-rows").textContent);
  const history = JSON.parse(document.getElementById("compare-history").textContent);
  const labels = rows.map((r) => `${r.profile} #${r.run_id}`);
  const bar = (id, datasets) => new Chart(document.getElementById(id), {
    type: "bar", data: { labels, datasets }, options: { maintainAspectRatio: false, animation: false },
  });
  bar("chart-throughput", [
    { label: "output tok/s", data: rows.map((r) => r.output_throughput) },
    { label: "total tok/s", data: rows.map((r) => r.total_token_throughput) },
  ]);
  bar("chart-ttft", [
    { label: "TTFT median (ms)", data: rows.map((r) => r.median_ttft_ms) },
    { label: "TTFT p99 (ms)", data: rows.map((r) => r.p99_ttft_ms) },
  ]);
  const datasets = Object.entries(history).map(([profile, points]) => ({
    label: profile, data: points.map((p) => ({ x: p.finished_at, y: p.output_throughput })),
  }));
  const times = [...new Set(datasets.flatMap((d) => d.data.map((p) => p.x)))].sort();
  new Chart(document.getElementById("chart-history"), {
    type: "line",
    data: { labels: times.map((t) => new Date(t).toLocaleString()), datasets: datasets.map((d) => ({ ...d, data: times.map((t) => (d.data.find((p) => p.x === t) || {}).y ?? null), spanGaps: true })) },
    options: { maintainAspectRatio: false, animation: false },
  });
})();
