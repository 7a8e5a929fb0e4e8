/* Supervisors' interventions (docs/protocol.md, issue 15), on the wallboard and the console.
 *
 * Wallboard: a "Supervise" panel in #wb-extensions and buttons in each agent row's
 * [data-slot=agent-actions]; clicking a row with data-interaction picks that contact. Messages go
 * over this page's own console socket (/ws/agent), which also brings the pushed `spy_state`,
 * `chat_observed`, `observed_message` and `whisper` messages.
 * Console: the agent sees a supervisor's `whisper` and `supervisor_notice` (chat.js opens a chat
 * a supervisor took over, from `chat_started`).
 * Everything shown comes from the server: the spy mode changes on `spy_state`, never on the click.
 */
(function () {
  "use strict";

  const q = (id, root) => (root || document).querySelector('[data-testid="' + id + '"]');
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // ------------------------------------------------------------------ the socket
  const listeners = [];
  const waiting = new Map(); // request_id -> {resolve, reject}
  let counter = 0;
  let sendRaw = null;

  function dispatch(m) {
    const w = m.request_id ? waiting.get(m.request_id) : null;
    if (w) {
      waiting.delete(m.request_id);
      if (m.type === "error") w.reject(Object.assign(new Error(m.message), { code: m.code }));
      else w.resolve(m);
    }
    for (const fn of listeners) fn(m);
  }

  function request(msg) {
    return new Promise((resolve, reject) => {
      if (!sendRaw) { reject(new Error("not connected")); return; }
      const id = "sv" + ++counter;
      waiting.set(id, { resolve, reject });
      if (!sendRaw({ ...msg, request_id: id })) { waiting.delete(id); reject(new Error("not connected")); }
    });
  }

  function ownSocket() {
    let backoff = 500;
    const connect = () => {
      const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/agent");
      ws.addEventListener("open", () => {
        backoff = 500;
        sendRaw = (m) => { if (ws.readyState !== WebSocket.OPEN) return false; ws.send(JSON.stringify(m)); return true; };
        document.body.dataset.superviseSocket = "open";
      });
      ws.addEventListener("message", (ev) => { try { dispatch(JSON.parse(ev.data)); } catch (e) { /* not JSON */ } });
      ws.addEventListener("close", (ev) => {
        sendRaw = null;
        document.body.dataset.superviseSocket = "closed";
        for (const w of waiting.values()) w.reject(new Error("connection lost"));
        waiting.clear();
        if (ev.code === 4401) return;
        setTimeout(connect, backoff * (0.8 + Math.random() * 0.4));
        backoff = Math.min(backoff * 2, 15000);
      });
    };
    connect();
  }

  // ------------------------------------------------------------------ the console page (agents)
  function consolePage() {
    const cc = window.ccConsole;
    const box = el("section", { class: "whispers", "data-testid": "whispers", "aria-live": "polite" });
    box.hidden = true;
    document.body.appendChild(box);
    cc.on((m) => {
      if (m.type === "whisper") {
        box.hidden = false;
        box.appendChild(el("p", { "data-testid": "whisper", "data-interaction": m.interaction_id },
          m.by + " (to you only): " + m.text));
      } else if (m.type === "supervisor_notice") {
        cc.toast(m.text, "info");
        box.hidden = false;
        box.appendChild(el("p", { "data-testid": "supervisor-notice", "data-action": m.action }, m.text));
      }
    });
  }

  // ------------------------------------------------------------------ the wallboard page (supervisors)
  const MODES = { listen: "Listening", whisper: "Whispering to the agent", barge: "Barged in" };

  function panel() {
    const p = el("div", { class: "supervise", "data-testid": "supervise" });
    const row = (...nodes) => { const d = el("div", { class: "sv-row" }); for (const n of nodes) d.appendChild(n); p.appendChild(d); return d; };
    const input = (id, label, extra) => el("input", { "data-testid": id, "aria-label": label, placeholder: label, ...(extra || {}) });
    const button = (id, text) => el("button", { type: "button", class: "btn", "data-testid": id }, text);
    p.appendChild(el("h2", {}, "Supervise"));
    row(el("label", {}, "Contact"), input("sv-interaction", "interaction id", { inputmode: "numeric", size: "8" }));
    row(el("strong", {}, "Call"), button("sv-listen", "Listen"), button("sv-whisper", "Whisper"),
      button("sv-barge", "Barge"), button("sv-spy-stop", "Hang up"),
      el("span", { "data-testid": "sv-spy-state", "data-state": "none" }, "not on a call"));
    row(el("strong", {}, "Chat"), button("sv-observe", "Observe"),
      input("sv-whisper-text", "note to the agent", { maxlength: "4000" }), button("sv-chat-whisper", "Whisper"),
      button("sv-takeover", "Take over"));
    p.appendChild(el("ol", { class: "sv-observed", "data-testid": "sv-observed" }));
    row(el("strong", {}, "Waiting"), input("sv-move-target", "queue or agent", { maxlength: "64" }),
      (() => { const s = el("select", { "data-testid": "sv-move-kind", "aria-label": "move to" });
        s.append(el("option", { value: "queue" }, "to queue"), el("option", { value: "agent" }, "to agent")); return s; })(),
      button("sv-move", "Move"), input("sv-priority", "priority +", { inputmode: "decimal", size: "5" }),
      button("sv-raise", "Raise"));
    row(el("strong", {}, "Agent"), input("sv-agent", "agent username", { maxlength: "64" }),
      input("sv-reason", "reason code", { maxlength: "64" }), button("sv-not-ready", "Not ready"),
      button("sv-ready", "Ready"), button("sv-logout", "Log out"));
    p.appendChild(el("p", { class: "sv-status", "data-testid": "sv-status", role: "status", "aria-live": "polite" }));
    return p;
  }

  function wallboardPage() {
    const host = document.getElementById("wb-extensions");
    const p = panel();
    host.appendChild(p);
    host.hidden = false;
    ownSocket();
    const iid = () => Number(q("sv-interaction", p).value);
    const status = (text, bad) => { const s = q("sv-status", p); s.textContent = text; s.dataset.kind = bad ? "error" : "ok"; };
    const act = async (msg, okText) => {
      try {
        await request(msg);
        if (okText) status(okText);
      } catch (e) {
        status("Refused: " + e.message, true);
      }
    };
    const observed = q("sv-observed", p);
    const line = (m) => el("li", { "data-seq": m.seq }, (m.author || m.sender) + ": " + m.text);

    listeners.push((m) => {
      if (m.type === "spy_state") {
        const s = q("sv-spy-state", p);
        s.dataset.state = m.state;
        s.dataset.mode = m.mode;
        s.textContent = m.state === "dialing" ? "Calling your phone…"
          : m.state === "active" ? MODES[m.mode] + " (call " + m.interaction_id + ")"
            : "Ended" + (m.error ? ": " + m.error : "");
      } else if (m.type === "chat_observed") {
        observed.replaceChildren(...m.messages.map(line));
        observed.dataset.interaction = m.interaction_id;
      } else if (m.type === "observed_message") {
        observed.appendChild(line(m.message));
      } else if (m.type === "whisper") {
        observed.appendChild(el("li", { class: "whisper" }, "(whisper) " + m.by + ": " + m.text));
      }
    });

    const on = (id, fn) => q(id, p).addEventListener("click", fn);
    for (const mode of ["listen", "whisper", "barge"]) {
      on("sv-" + mode, () => act({ type: "spy", interaction_id: iid(), mode }));
    }
    on("sv-spy-stop", () => act({ type: "spy_stop", interaction_id: iid() }));
    on("sv-observe", () => act({ type: "chat_observe", interaction_id: iid() }, "Observing the chat."));
    on("sv-chat-whisper", () => {
      const t = q("sv-whisper-text", p);
      act({ type: "chat_whisper", interaction_id: iid(), text: t.value }, "Whispered to the agent.").then(() => { t.value = ""; });
    });
    on("sv-takeover", () => act({ type: "chat_takeover", interaction_id: iid() },
      "You took the chat over: it is open in your console."));
    on("sv-move", () => {
      const kind = q("sv-move-kind", p).value;
      act({ type: "contact_move", interaction_id: iid(), [kind]: q("sv-move-target", p).value }, "Moved.");
    });
    on("sv-raise", () => act({ type: "contact_priority", interaction_id: iid(), by: Number(q("sv-priority", p).value) },
      "Priority raised."));
    const agent = () => q("sv-agent", p).value;
    on("sv-ready", () => act({ type: "force_state", agent: agent(), state: "ready" }, "Set ready."));
    on("sv-not-ready", () => act({ type: "force_state", agent: agent(), state: "not_ready",
      reason: q("sv-reason", p).value || "meeting" }, "Set not ready."));
    on("sv-logout", () => act({ type: "force_logout", agent: agent() }, "Signed out."));

    // the wallboard's rows: pick a contact or an agent; per-agent buttons in the actions slot
    document.addEventListener("click", (ev) => {
      const t = ev.target;
      if (t.closest && t.closest("[data-testid=supervise]")) return;
      const slotBtn = t.closest && t.closest("button[data-sv-agent]");
      if (slotBtn) {
        const msg = slotBtn.dataset.svAction === "logout" ? { type: "force_logout", agent: slotBtn.dataset.svAgent }
          : { type: "force_state", agent: slotBtn.dataset.svAgent, state: slotBtn.dataset.svAction,
            reason: slotBtn.dataset.svAction === "not_ready" ? "meeting" : null };
        act(msg, "Done.");
        return;
      }
      const row = t.closest && t.closest("[data-interaction]");
      if (row && !t.closest("button")) q("sv-interaction", p).value = row.dataset.interaction;
      const agentRow = t.closest && t.closest("tr[data-agent]");
      if (agentRow && !t.closest("button")) q("sv-agent", p).value = agentRow.dataset.agent;
    });
    document.addEventListener("wallboard:update", () => {
      for (const slot of document.querySelectorAll("[data-slot=agent-actions]")) {
        if (slot.querySelector("[data-sv-agent]")) continue;
        for (const [action, text] of [["ready", "Ready"], ["not_ready", "Not ready"], ["logout", "Log out"]]) {
          slot.appendChild(el("button", { type: "button", class: "btn btn-small", "data-sv-agent": slot.dataset.agent,
            "data-sv-action": action }, text));
        }
      }
    });
  }

  function start() {
    const css = el("link", { rel: "stylesheet", href: "/static/interventions.css" });
    document.head.appendChild(css);
    if (window.ccConsole) consolePage();
    else if (document.getElementById("wb-extensions")) wallboardPage();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
