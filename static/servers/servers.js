// Server page: follow the server's status and (operators) its log over the one websocket.
// Log lines arrive in batches (`server.log` events); the panel keeps the last MAX_LINES and
// redraws at most once per animation frame, so 20,000 lines/s do not freeze the page.
(function () {
  const root = document.querySelector("[data-server-detail]");
  if (!root) return;
  const id = Number(root.dataset.serverDetail);
  const groups = [`servers.server.${id}`];
  if (root.dataset.canLogs) groups.push(`servers.log.${id}`);
  Live.connect(groups);

  const MAX_LINES = 2000;
  const pre = document.getElementById("log");
  const counter = document.querySelector("[data-log-count]");
  if (!pre || !pre.dataset.live) return;
  let lines = pre.textContent.split("\n");
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  let received = 0;
  let scheduled = false;
  pre.scrollTop = pre.scrollHeight; // the newest lines first in view

  function draw() {
    scheduled = false;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 30;
    pre.textContent = lines.join("\n") + "\n";
    if (counter) counter.textContent = String(received);
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  window.addEventListener("server-log", (event) => {
    const data = event.detail;
    if (data.server_id !== id) return;
    if (data.rotated) lines.push("--- log rotated ---");
    lines = lines.concat(data.lines);
    if (lines.length > MAX_LINES) lines = lines.slice(lines.length - MAX_LINES);
    received += data.lines.length;
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(draw);
    }
  });
})();
