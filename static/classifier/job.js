// Live progress of a classification job: Alpine state fed by "classifier.progress" events (files done,
// files/s, rerank share, ETA, seconds spent per stage); when the job stops, the results table is fetched again (htmx) so it
// shows every file.
function jobProgress(jobId, status, done, total, skipped, share, seconds) {
  return {
    status, done, total, skipped, share, seconds, rate: "–", eta: "–", message: "",
    init() {
      // The job may have moved on before the socket opened: read its state once on (re)connect. The
      // socket can open before Alpine starts this component, so an open socket counts as well.
      window.addEventListener("live-open", () => this.refresh());
      if (window.Live && Live.socket && Live.socket.readyState === WebSocket.OPEN) this.refresh();
    },
    refresh() {
      fetch(`/api/classifier/jobs/${jobId}/`).then((r) => (r.ok ? r.json() : null)).then((j) => {
        if (j) this.update({ ...j, job_id: j.id, files_per_s: null, eta_s: null }, { keepRate: true });
      });
    },
    update(d, { keepRate = false } = {}) {
      if (d.job_id !== jobId) return;
      const wasActive = this.status === "running" || this.status === "queued";
      this.status = d.status; this.done = d.files_done; this.total = d.files_total;
      this.skipped = d.files_skipped; this.share = d.rerank_share;
      if (d.message !== undefined) this.message = d.message;
      if (d.seconds_embed !== undefined) {
        this.seconds = { extract: d.seconds_extract, embed: d.seconds_embed, rerank: d.seconds_rerank };
      }
      const active = d.status === "running" || d.status === "queued";
      if (!keepRate) {
        this.rate = d.files_per_s ? d.files_per_s.toFixed(1) : "–";
        this.eta = active && d.eta_s ? duration(d.eta_s) : "–";
      }
      if (!active) this.eta = "–";
      if (wasActive && !active) {
        htmx.ajax("GET", window.location.pathname, { target: "#results", swap: "outerHTML" });
      }
    },
  };
}

function duration(seconds) {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
