// Chat page: streams from the portal's own /v1 with the login session (the user's quota applies),
// renders Markdown (markdown-it escapes raw HTML), and saves each turn to the conversation.
(function () {
  const md = window.markdownit({ html: false, linkify: true, breaks: true });
  const form = document.getElementById("chat-form");
  const log = document.getElementById("chat-log");
  const input = document.getElementById("chat-input");
  const errorBox = document.getElementById("chat-error");
  const usageBox = document.getElementById("chat-usage");
  const history = JSON.parse(document.getElementById("chat-history").textContent);
  let conversation = form.dataset.conversation || null;

  function cookie(name) {
    const match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : "";
  }
  const csrf = cookie("csrftoken");

  function bubble(role, text) {
    const div = document.createElement("div");
    div.className = "msg msg-" + role;
    div.dataset.role = role;
    div.innerHTML = role === "assistant" ? md.render(text) : "";
    if (role !== "assistant") div.textContent = text;
    log.appendChild(div);
    div.scrollIntoView({ block: "end" });
    return div;
  }
  history.forEach((m) => bubble(m.role, m.content));

  async function post(url, body) {
    const r = await fetch(url, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf }, body: JSON.stringify(body) });
    const data = await r.json();
    if (!r.ok) throw new Error(data.detail || ("HTTP " + r.status));
    return data;
  }

  function fail(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  // A new conversation joins the sidebar at once, titled like the server titles it (the first line).
  function sidebarAdd(url, text) {
    const list = document.getElementById("chat-conversations");
    list.querySelectorAll("li").forEach((li) => { li.classList.remove("active"); });
    const empty = list.querySelector("[data-no-conversations]");
    if (empty) empty.remove();
    const li = document.createElement("li");
    li.className = "active";
    const a = document.createElement("a");
    a.href = url;
    a.textContent = text.split("\n")[0].slice(0, 80);
    li.appendChild(a);
    list.prepend(li);
  }

  async function send() {
    const text = input.value.trim();
    if (!text) return;
    errorBox.hidden = true;
    const model = document.getElementById("chat-model").value;
    const system = document.getElementById("chat-system").value.trim();
    if (!conversation) {
      const created = await post("/chat/conversations/", { model: model, system_prompt: system });
      conversation = created.id;
      history.length = 0;
      window.history.replaceState(null, "", created.url);
    }
    const first = history.length === 0 && !form.dataset.conversation;
    await post(`/chat/${conversation}/messages/`, { role: "user", content: text });
    if (first) { sidebarAdd(`/chat/${conversation}/`, text); form.dataset.conversation = conversation; }
    history.push({ role: "user", content: text });
    bubble("user", text);
    input.value = "";
    const messages = (system ? [{ role: "system", content: system }] : []).concat(history);
    const out = bubble("assistant", "");
    out.classList.add("streaming");
    const body = { model: model, messages: messages, stream: true, stream_options: { include_usage: true },
      temperature: parseFloat(document.getElementById("chat-temperature").value),
      max_tokens: parseInt(document.getElementById("chat-max-tokens").value, 10) };
    const headers = { "Content-Type": "application/json", "X-CSRFToken": csrf };
    const team = document.getElementById("chat-team");  // only for members of several teams
    if (team) headers["X-Portal-Team"] = team.value;
    const response = await fetch("/v1/chat/completions", { method: "POST", credentials: "same-origin",
      headers: headers, body: JSON.stringify(body) });
    if (!response.ok) {
      const err = await response.json().catch(() => ({}));
      out.remove();
      return fail((err.error && err.error.message) || ("HTTP " + response.status));
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "", answer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (!event.startsWith("data: ")) continue;  // ": loading …" keep-alives while a model loads
        const payload = event.slice(6);
        if (payload === "[DONE]") continue;
        const chunk = JSON.parse(payload);
        if (chunk.error) { fail(chunk.error.message); continue; }
        if (chunk.usage) usageBox.textContent = `${chunk.usage.prompt_tokens} prompt + ${chunk.usage.completion_tokens} completion tokens`;
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && delta.content) {
          answer += delta.content;
          out.innerHTML = md.render(answer);
        }
      }
    }
    out.classList.remove("streaming");
    out.dataset.done = "1";
    if (answer) {
      history.push({ role: "assistant", content: answer });
      await post(`/chat/${conversation}/messages/`, { role: "assistant", content: answer });
    }
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); send().catch((err) => fail(err.message)); });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); }
  });
})();
