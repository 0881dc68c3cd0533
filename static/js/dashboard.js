// Dashboard: per-node host and GPU figures, live from "node.sample" events, last 120 points.
(function () {
  const MAX_POINTS = 120;
  const charts = {};

  function fmt(v, unit, digits = 1) {
    return v === null || v === undefined ? "—" : `${Number(v).toFixed(digits)}${unit}`;
  }

  function chartFor(nodeId) {
    if (charts[nodeId]) return charts[nodeId];
    const canvas = document.getElementById(`chart-node-${nodeId}`);
    if (!canvas) return null;
    charts[nodeId] = new Chart(canvas, {
      type: "line",
      data: { labels: [], datasets: [
        { label: "CPU %", data: [], borderColor: "#2563eb", pointRadius: 0, tension: 0.2 },
        { label: "RAM %", data: [], borderColor: "#16a34a", pointRadius: 0, tension: 0.2 },
        { label: "GPU util %", data: [], borderColor: "#dc2626", pointRadius: 0, tension: 0.2 },
      ] },
      options: { animation: false, responsive: true, maintainAspectRatio: false,
        scales: { y: { min: 0, max: 100 }, x: { ticks: { maxTicksLimit: 6 } } } },
    });
    return charts[nodeId];
  }

  function addPoint(nodeId, sample) {
    const chart = chartFor(nodeId);
    if (!chart) return;
    const gpu = (sample.gpus || [])[0];
    chart.data.labels.push(new Date(sample.at).toLocaleTimeString());
    chart.data.datasets[0].data.push(sample.host.cpu_percent);
    chart.data.datasets[1].data.push(sample.host.ram_percent);
    chart.data.datasets[2].data.push(gpu ? gpu.utilization_pct : null);
    if (chart.data.labels.length > MAX_POINTS) {
      chart.data.labels.shift();
      chart.data.datasets.forEach((d) => d.data.shift());
    }
    chart.update("none");
  }

  function showFigures(nodeId, sample) {
    const card = document.querySelector(`[data-node-id="${nodeId}"]`);
    if (!card) return;
    const h = sample.host;
    const set = (name, text) => { const el = card.querySelector(`[data-fig="${name}"]`); if (el) el.textContent = text; };
    set("cpu", fmt(h.cpu_percent, " %"));
    set("ram", `${fmt(h.ram_used_gb, "", 1)} / ${fmt(h.ram_total_gb, " GB", 1)}`);
    set("swap", `${fmt(h.swap_used_gb, "", 1)} / ${fmt(h.swap_total_gb, " GB", 1)}`);
    set("disk", `${fmt(h.disk_free_gb, " GB", 1)} free`);
    set("updated", new Date(sample.at).toLocaleTimeString());
    const gpus = sample.gpus || [];
    set("gpus", gpus.length ? gpus.map((g) =>
      `#${g.index} ${g.name}: ${fmt(g.utilization_pct, " %", 0)} util, ${fmt(g.temperature_c, " °C", 0)}, ` +
      `${fmt(g.power_w, " W", 0)}, ${g.pstate || "—"}, ` +
      (g.unified_memory ? "unified memory" : `${fmt(g.memory_used_gb, "", 1)} / ${fmt(g.memory_total_gb, " GB", 1)}`)
    ).join(" · ") : "no GPU");
  }

  window.addEventListener("node-sample", (ev) => {
    showFigures(ev.detail.node_id, ev.detail);
    addPoint(ev.detail.node_id, ev.detail);
  });

  document.addEventListener("DOMContentLoaded", () => {
    const history = JSON.parse(document.getElementById("node-history").textContent);
    Object.entries(history).forEach(([nodeId, samples]) => {
      samples.forEach((s) => addPoint(nodeId, s));
      if (samples.length) showFigures(nodeId, samples[samples.length - 1]);
    });
    Live.connect(["nodes.all"]);
  });
})();
