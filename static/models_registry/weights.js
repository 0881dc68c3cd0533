// Weights page: once the websocket listens, ask every node's worker for a fresh list of its cache, so no
// answer can arrive before the page hears it. Each node's section reloads itself (htmx) when the request
// is in (weights-requested, to show "asking…") and on weights-scan / weights-deletion events naming it.
function refreshWeights() {
  const form = document.getElementById("weights-refresh");
  if (!form) return;
  fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" })
    .then(() => window.dispatchEvent(new CustomEvent("weights-requested")));
}
window.addEventListener("live-open", refreshWeights);
window.addEventListener("submit", (e) => {
  if (e.target.id !== "weights-refresh") return;
  e.preventDefault();
  refreshWeights();
});
