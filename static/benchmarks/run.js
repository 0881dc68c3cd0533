// The run page: live progress over the websocket, and the result table re-rendered (htmx
// fragment) whenever a profile finishes or the run changes state.
function benchmarkRun(runId, state, message) {
  const initial = JSON.parse(document.getElementById("run-progress").textContent || "{}");
  return {
    state, message, p: initial,
    init() { Live.connect([`benchmarks.run.${runId}`]); },
    mine(d) { return d && d.run_id === runId; },
    progress(d) { if (this.mine(d)) { this.p = d; this.state = d.status; } },
    status(d) {
      if (!this.mine(d)) return;
      this.state = d.status; this.message = d.message;
      this.refresh();
    },
    summary(d) { if (this.mine(d)) this.refresh(); },
    refresh() {
      const url = this.$root.dataset.tableUrl;
      htmx.ajax("GET", url, { target: "#result-table", swap: "outerHTML" });
    },
  };
}
