// Engine metrics of a server (templates/servers/_metrics.html): the last 120 samples, then live
// "metrics.sample" events from the group servers.metrics.<id>, drawn with Chart.js.
(function () {
  if (window.ServerMetrics) { // included again (a second server, an htmx swap): set up the new sections only
    window.ServerMetrics.scan();
    return;
  }
  const MAX_POINTS = 120;
  // chart -> [field, legend, scale to the unit shown, colour]
  const SERIES = {
    throughput: [["generation_tps", "generation tok/s", 1, "#2563eb"], ["prompt_tps", "prompt tok/s", 1, "#9333ea"]],
    latency: [["ttft_mean_s", "TTFT ms", 1000, "#dc2626"], ["tpot_mean_s", "TPOT ms", 1000, "#ea580c"]],
    cache: [["kv_cache_usage", "KV cache %", 100, "#16a34a"], ["prefix_cache_hit_rate", "prefix-cache hit %", 100, "#0891b2"]],
  };

  function scaled(point, field, scale) {
    const v = point[field];
    return v === null || v === undefined ? null : v * scale;
  }

  function fmt(v, scale, unit, digits) {
    return v === null || v === undefined ? "—" : `${(v * scale).toFixed(digits)}${unit}`;
  }

  function makeChart(canvas, series, points) {
    return new Chart(canvas, {
      type: "line",
      data: {
        labels: points.map((p) => new Date(p.at).toLocaleTimeString()),
        datasets: series.map(([field, legend, scale, colour]) => ({
          label: legend, data: points.map((p) => scaled(p, field, scale)), borderColor: colour,
          pointRadius: 0, borderWidth: 1.5, tension: 0.2, spanGaps: true,
        })),
      },
      options: { animation: false, responsive: true, maintainAspectRatio: false,
        scales: { y: { beginAtZero: true }, x: { ticks: { maxTicksLimit: 6 } } } },
    });
  }

  function showNow(section, p) {
    const set = (name, text) => {
      const el = section.querySelector(`[data-figure="${name}"]`);
      if (el) el.textContent = text;
    };
    set("at", new Date(p.at).toLocaleTimeString());
    set("generation_tps", fmt(p.generation_tps, 1, " tok/s", 1));
    set("prompt_tps", fmt(p.prompt_tps, 1, " tok/s", 1));
    set("requests", `${fmt(p.requests_per_s, 1, " /s", 2)} · ${fmt(p.running, 1, "", 0)} running · ` +
      `${fmt(p.waiting, 1, "", 0)} waiting`);
    set("ttft", `${fmt(p.ttft_mean_s, 1000, " ms", 0)} / ${fmt(p.ttft_p95_s, 1000, " ms", 0)}`);
    set("tpot_mean_s", fmt(p.tpot_mean_s, 1000, " ms", 1));
    set("itl", `${fmt(p.itl_p50_s, 1000, " ms", 1)} / ${fmt(p.itl_p95_s, 1000, " ms", 1)}`);
    set("e2e", `${fmt(p.e2e_mean_s, 1, " s", 2)} / ${fmt(p.e2e_p95_s, 1, " s", 2)}`);
    set("kv_cache_usage", fmt(p.kv_cache_usage, 100, " %", 1));
    set("prefix_cache_hit_rate", fmt(p.prefix_cache_hit_rate, 100, " %", 1));
  }

  // Join the server's group on the page's one socket, whether it is open, opening or not yet made.
  // Waits for the page's own scripts (window "load"), so a page that opens the socket itself is not
  // given a second one.
  function follow(group) {
    if (document.readyState !== "complete") {
      window.addEventListener("load", () => follow(group), { once: true });
      return;
    }
    if (!window.Live) return;
    if (!Live.socket) {
      Live.connect([group]);
    } else if (Live.socket.readyState === WebSocket.OPEN) {
      Live.subscribe(group);
    } else {
      Live.groups.add(group); // joined by the query of any reconnect
      window.addEventListener("live-open", () => Live.subscribe(group), { once: true });
    }
  }

  function setup(section) {
    section.dataset.ready = "1";
    const serverId = Number(section.dataset.serverMetrics);
    const points = JSON.parse(section.querySelector("script[type='application/json']").textContent);
    const charts = {};
    window.ServerMetrics.charts[serverId] = charts;
    section.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
      charts[canvas.dataset.chart] = makeChart(canvas, SERIES[canvas.dataset.chart], points);
    });
    if (points.length) showNow(section, points[points.length - 1]);

    window.addEventListener("metrics-sample", (ev) => {
      const p = ev.detail;
      if (p.server_id !== serverId) return;
      for (const [name, chart] of Object.entries(charts)) {
        chart.data.labels.push(new Date(p.at).toLocaleTimeString());
        SERIES[name].forEach(([field, , scale], i) => chart.data.datasets[i].data.push(scaled(p, field, scale)));
        if (chart.data.labels.length > MAX_POINTS) {
          chart.data.labels.shift();
          chart.data.datasets.forEach((d) => d.data.shift());
        }
        chart.update("none");
      }
      showNow(section, p);
      section.dataset.points = String(charts.throughput ? charts.throughput.data.labels.length : 0);
      const empty = section.querySelector("[data-metrics-empty]");
      if (empty) empty.hidden = true;
    });
    follow(section.dataset.group);
  }

  function scan() {
    document.querySelectorAll("[data-server-metrics]:not([data-ready])").forEach(setup);
  }

  window.ServerMetrics = { scan, charts: {} }; // charts by server id, for the console and tests
  scan();
})();
