// Live download rows: each row is an Alpine component fed by the websocket events
// download.progress / download.status (re-dispatched by live.js as download-progress / download-status).
window.downloadRow = function (initial) {
  return Object.assign({}, initial, {
    apply(d) {
      if (!d || d.id !== this.id) return;
      Object.assign(this, d);
    },
    get active() { return this.status === "queued" || this.status === "running"; },
    get resumable() { return this.status === "failed" || this.status === "cancelled"; },
    fmtBytes(n) {
      if (!n) return "0 B";
      const units = ["B", "kB", "MB", "GB", "TB"];
      let i = 0;
      while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
      return n.toFixed(i ? 1 : 0) + " " + units[i];
    },
    fmtRate(r) { return this.status === "running" && r ? this.fmtBytes(r) + "/s" : ""; },
    fmtEta(s) {
      if (this.status !== "running" || s === null || s === undefined) return "";
      if (s < 60) return Math.round(s) + " s";
      if (s < 3600) return Math.round(s / 60) + " min";
      return (s / 3600).toFixed(1) + " h";
    },
  });
};
// A download this page does not show yet (started elsewhere): reload to list it, unless this page is
// itself leaving (a form was just submitted), which would swallow the message of the next page.
let leaving = false;
window.addEventListener("submit", () => { leaving = true; });
window.addEventListener("beforeunload", () => { leaving = true; });
window.addEventListener("download-status", (e) => {
  const table = document.querySelector("[data-downloads-table]");
  if (!table || table.querySelector(`[data-download-id="${e.detail.id}"]`)) return;
  setTimeout(() => { if (!leaving) location.reload(); }, 1000);
});
