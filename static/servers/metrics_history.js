// History of a server's engine figures (servers/metrics.html): fetched from the REST API for the
// chosen span, one row per scrape for the last hour and one per minute before that.
(function () {
  const section = document.querySelector("[data-metrics-history]");
  if (!section) return;
  const url = section.dataset.url;
  const canvas = section.querySelector("canvas");
  const status = section.querySelector("[data-history-status]");
  let chart = null;

  async function load(hours) {
    const since = new Date(Date.now() - hours * 3600 * 1000).toISOString();
    const response = await fetch(`${url}?since=${encodeURIComponent(since)}&limit=20000`,
      { headers: { Accept: "application/json" } });
    if (!response.ok) {
      status.textContent = `Could not load the history (HTTP ${response.status}).`;
      return;
    }
    const rows = await response.json();
    status.textContent = rows.length ? `${rows.length} samples` : "No samples in this span.";
    const labels = rows.map((r) => new Date(r.at).toLocaleString());
    const series = (field, scale) => rows.map((r) => (r[field] === null ? null : r[field] * scale));
    const datasets = [
      { label: "generation tok/s", data: series("generation_tps", 1), borderColor: "#2563eb", yAxisID: "y" },
      { label: "TTFT ms", data: series("ttft_mean_s", 1000), borderColor: "#dc2626", yAxisID: "ms" },
      { label: "TPOT ms", data: series("tpot_mean_s", 1000), borderColor: "#ea580c", yAxisID: "ms" },
    ].map((d) => ({ ...d, pointRadius: 0, borderWidth: 1.5, spanGaps: true }));
    if (chart) chart.destroy();
    chart = new Chart(canvas, {
      type: "line", data: { labels, datasets },
      options: { animation: false, responsive: true, maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, position: "left" }, ms: { beginAtZero: true, position: "right" },
          x: { ticks: { maxTicksLimit: 8 } } } },
    });
    section.dataset.loaded = String(rows.length);
  }

  const select = section.querySelector("select");
  select.addEventListener("change", () => load(Number(select.value)));
  load(Number(select.value));
})();
