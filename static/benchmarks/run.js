// The run page: live progress over the websocket, and the result table re-rendered (htmx
// fragment) whenever a profile finishes or the run changes state. On (re)connect it reads the
// run once from the API, so nothing that happened while the socket was down is missed.
function benchmarkRun(runId, state, message) {
  const initial = JSON.parse(document.getElementById("run-progress").textContent || "{}");
  return {
    state, message, p: initial,
    init() {
      window.addEventListener("live-open", () => this.resync());
      Live.connect([`benchmarks.run.${runId}`]);
    },
    mine(d) { return d && d.run_id === runId; },
    progress(d) { if (this.mine(d) && !["succeeded", "failed", "cancelled", "skipped"].includes(this.state)) { this.p = d; this.state = d.status; } },
    status(d) {
      if (!this.mine(d)) return;
      this.state = d.status; this.message = d.message;
      this.refresh();
    },
    summary(d) { if (this.mine(d)) this.refresh(); },
    async resync() {
      const response = await fetch(`/api/benchmarks/runs/${runId}`, { credentials: "same-origin" });
      if (!response.ok) return;
      const run = await response.json();
      this.state = run.status; this.message = run.message;
      if (run.progress && run.progress.phase) this.p = run.progress;
      this.refresh();
    },
    refresh() {
      htmx.ajax("GET", this.$root.dataset.tableUrl, { target: "#result-table", swap: "outerHTML" });
    },
  };
}
