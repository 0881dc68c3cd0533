// Live progress of a classification job: Alpine state fed by "classifier.progress" events;
// when the job stops, the results table is fetched again (htmx) so it shows every file.
function jobProgress(jobId, status, done, total, skipped, share) {
  return {
    status, done, total, skipped, share, rate: "–", eta: "–",
    init() {
      // The job may have moved on before the socket opened: read its state once on connect.
      window.addEventListener("live-open", () => {
        fetch(`/api/classifier/jobs/${jobId}/`).then((r) => r.ok ? r.json() : null).then((j) => {
          if (j) this.update({ ...j, job_id: j.id, files_per_s: 0, eta_s: null });
        });
      });
    },
    update(d) {
      if (d.job_id !== jobId) return;
      const wasActive = this.status === "running" || this.status === "queued";
      this.status = d.status; this.done = d.files_done; this.total = d.files_total;
      this.skipped = d.files_skipped; this.share = d.rerank_share;
      this.rate = d.files_per_s ? d.files_per_s.toFixed(1) : "–";
      this.eta = d.eta_s ? Math.round(d.eta_s) + " s" : "–";
      if (wasActive && !(d.status === "running" || d.status === "queued")) {
        htmx.ajax("GET", window.location.pathname, { target: "#results", swap: "outerHTML" });
      }
    },
  };
}
