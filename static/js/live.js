// One websocket per page: ws/events/. Each JSON event {event, data} is re-dispatched on window
// as a CustomEvent named after the dotted type with dashes (server.status -> "server-status"),
// which Alpine receives with @server-status.window and plain scripts with addEventListener.
(function () {
  const Live = {
    socket: null,
    groups: new Set(),
    retryMs: 500,
    connect(groups) {
      (groups || []).forEach((g) => this.groups.add(g));
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      const query = this.groups.size ? "?groups=" + encodeURIComponent([...this.groups].join(",")) : "";
      const socket = new WebSocket(`${scheme}://${location.host}/ws/events/${query}`);
      this.socket = socket;
      socket.onopen = () => {
        this.retryMs = 500;
        window.dispatchEvent(new CustomEvent("live-open"));
      };
      socket.onmessage = (msg) => {
        const event = JSON.parse(msg.data);
        window.dispatchEvent(new CustomEvent(event.event.replaceAll(".", "-"), { detail: event.data }));
      };
      socket.onclose = (ev) => {
        window.dispatchEvent(new CustomEvent("live-closed", { detail: { code: ev.code } }));
        if (ev.code === 4401) return; // logged out: reconnecting would not help
        setTimeout(() => this.connect(), this.retryMs);
        this.retryMs = Math.min(this.retryMs * 2, 10000);
      };
    },
    subscribe(group) {
      this.groups.add(group);
      if (this.socket && this.socket.readyState === WebSocket.OPEN) {
        this.socket.send(JSON.stringify({ action: "subscribe", group }));
      }
    },
  };
  window.Live = Live;
})();
