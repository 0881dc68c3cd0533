// Inputs marked data-served-models offer the served model names of /v1/models (what the user may call),
// completing the last of a comma-separated list.
(function () {
  let names = null;
  async function load() {
    if (names) return names;
    // The gateway takes the login session only with the CSRF cookie echoed in a header.
    const csrf = (document.cookie.match(/(?:^|; )csrftoken=([^;]*)/) || [])[1] || "";
    const r = await fetch("/v1/models", { credentials: "same-origin", headers: { "X-CSRFToken": decodeURIComponent(csrf) } });
    names = r.ok ? ((await r.json()).data || []).map((m) => m.id) : [];
    return names;
  }
  async function offer(input) {
    const list = document.getElementById(input.getAttribute("list"));
    const head = input.value.includes(",") ? input.value.slice(0, input.value.lastIndexOf(",") + 1) + " " : "";
    const taken = new Set(input.value.split(",").map((s) => s.trim()));
    list.replaceChildren(...(await load()).filter((n) => !taken.has(n)).map((n) => {
      const option = document.createElement("option");
      option.value = head + n;
      return option;
    }));
  }
  document.addEventListener("focusin", (e) => { if (e.target.matches("[data-served-models]")) offer(e.target); });
  document.addEventListener("input", (e) => { if (e.target.matches("[data-served-models]")) offer(e.target); });
})();
