// The precision / rerank-share trade-off of a calibrated margin (taxonomy page): for each candidate
// margin, how often the files taken without the LLM are right, and what share goes to the LLM.
// Alpine calls it from x-init, so curves swapped in by htmx after a calibration are drawn too.
function marginCurve(canvas, dataId, margin, target) {
  const curve = JSON.parse(document.getElementById(dataId).textContent);
  const points = (field) => curve.map((p) => ({ x: p.margin, y: p[field] }));
  const chosen = curve.filter((p) => p.margin <= margin).pop() || curve[0];
  const xMax = curve.length ? curve[curve.length - 1].margin : 1;
  const previous = Chart.getChart(canvas);
  if (previous) previous.destroy();
  new Chart(canvas, {
    type: "scatter",
    data: {
      datasets: [
        { label: "precision without the LLM", data: points("precision"), showLine: true, borderColor: "#16a34a", pointRadius: 1.5 },
        { label: "rerank share", data: points("rerank_share"), showLine: true, borderColor: "#2563eb", pointRadius: 1.5 },
        { label: `target ${target}`, data: [{ x: 0, y: target }, { x: xMax, y: target }], showLine: true,
          borderColor: "#9ca3af", borderDash: [4, 4], pointRadius: 0 },
        { label: `margin ${margin}`, data: chosen ? [{ x: margin, y: chosen.precision }, { x: margin, y: chosen.rerank_share }] : [],
          showLine: true, borderColor: "#dc2626", backgroundColor: "#dc2626", pointRadius: 4 },
      ],
    },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false,
      scales: { x: { title: { display: true, text: "margin (top-1 minus top-2 score)" }, min: 0 },
        y: { min: 0, max: 1, title: { display: true, text: "share of labeled files" } } },
    },
  });
}
