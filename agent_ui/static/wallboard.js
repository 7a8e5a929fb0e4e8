/* Supervisor wallboard: renders the `wallboard` frames the server pushes over /ws/wallboard
 * (docs/wallboard.md). Every frame is a full snapshot, so a reconnect needs nothing special.
 * The page never polls: between frames only the displayed ages grow, from the frame's values.
 *
 * Hooks for other scripts (e.g. supervisor actions): every render dispatches
 * `wallboard:update` on document (detail: the snapshot); agent rows carry data-agent, contact
 * rows and cells data-interaction, and each agent row has an empty `[data-slot=agent-actions]`
 * cell; `#wb-extensions` is an empty section; `window.wallboard.send(msg)` sends a console message
 * on this socket and resolves with the reply (or rejects with the error).
 */
(() => {
  "use strict";
  const $ = (sel) => document.querySelector(sel);
  let ws = null;
  let backoff = 500;
  let skew = 0; // server time - this browser's time (ms), from the frame's `at`
  let counter = 0;
  const pending = new Map(); // request_id -> {resolve, reject}

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("data-") || k === "title" || k === "type") node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) node.append(c instanceof Node ? c : String(c ?? ""));
    return node;
  }

  function duration(s) {
    if (s === null || s === undefined) return "–";
    s = Math.max(0, Math.round(s));
    const m = Math.floor(s / 60), r = s % 60;
    return m ? `${m}m ${String(r).padStart(2, "0")}s` : `${r}s`;
  }

  // a time from the frame (ms since the epoch, server time), shown as a growing age
  function age(sinceMs) {
    return el("span", { class: "age", "data-since": sinceMs }, duration((Date.now() + skew - sinceMs) / 1000));
  }

  function pct(v) { return v === null || v === undefined ? "–" : `${v}%`; }
  function secs(v) { return v === null || v === undefined ? "–" : `${v}s`; }

  function tier(t) { return t && t !== "regular" ? el("span", { class: `tier-${t}` }, t.toUpperCase()) : ""; }

  function who(c) {
    return el("span", { class: "who" }, c.customer || "unknown customer", " ", tier(c.tier));
  }

  function status(text, error) {
    const s = $("[data-testid=wb-status]");
    s.textContent = text;
    s.classList.toggle("error", Boolean(error));
  }

  function renderQueues(snap) {
    const body = $("[data-testid=wb-queues] tbody");
    body.replaceChildren();
    for (const q of snap.queues) {
      const a = q.agents;
      const below = q.sl_pct !== null && q.sl_pct < q.sl_target_pct;
      body.append(el("tr", { "data-queue": q.queue, "data-channel": q.channel },
        el("td", {}, q.queue), el("td", {}, q.channel),
        el("td", { class: "num", "data-field": "waiting" }, q.waiting),
        el("td", { class: "num", "data-field": "longest_wait" }, q.longest_wait_since === null ? "–" : age(q.longest_wait_since)),
        el("td", { class: "num" + (below ? " below" : ""), "data-field": "sl" },
          `${pct(q.sl_pct)} (target ${q.sl_target_pct}% in ${q.sl_target_s}s)`),
        el("td", { class: "num", "data-field": "asa" }, secs(q.asa_s)),
        el("td", { class: "num", "data-field": "aht" }, secs(q.aht_s)),
        el("td", { class: "num", "data-field": "abandoned" }, `${pct(q.abandon_pct)} (${q.abandoned})`),
        el("td", { class: "num", "data-field": "handled" }, q.handled),
        el("td", { "data-field": "agents" },
          `ready ${a.ready} · busy ${a.busy} · wrap-up ${a.wrap_up} · not ready ${a.not_ready}`)));
    }
    if (!snap.queues.length) body.append(el("tr", {}, el("td", { class: "empty", colSpan: 10 }, "No queues in your teams")));
  }

  function renderWaiting(snap) {
    const list = $("[data-testid=wb-waiting]");
    list.replaceChildren();
    const all = snap.queues.flatMap((q) => q.contacts).sort((x, y) => x.since - y.since);
    for (const c of all) {
      list.append(el("li", { "data-interaction": c.interaction_id, "data-queue": c.queue },
        who(c), el("span", {}, `${c.queue} · ${c.channel}`), age(c.since),
        c.agent_id ? el("span", { class: "offered" }, "offered") : ""));
    }
    if (!all.length) list.append(el("li", { class: "empty" }, "Nobody is waiting"));
  }

  function renderAlerts(snap) {
    const list = $("[data-testid=wb-alerts]");
    list.replaceChildren();
    for (const a of snap.alerts) {
      list.append(el("li", { "data-alert": a.kind, "data-interaction": a.interaction_id, "data-agent": a.agent_id },
        a.message));
    }
    if (!snap.alerts.length) list.append(el("li", { class: "empty" }, "No alerts"));
  }

  function renderAgents(snap) {
    const body = $("[data-testid=wb-agents] tbody");
    body.replaceChildren();
    for (const a of snap.agents) {
      const contact = el("td", { "data-field": "contact" });
      for (const c of a.contacts) {
        contact.append(el("div", { "data-interaction": c.interaction_id }, who(c), ` ${c.queue} · ${c.channel}`));
      }
      body.append(el("tr", { "data-agent": a.agent_id },
        el("td", {}, a.name),
        el("td", { "data-field": "state" },
          el("span", { class: `state state-${a.state}` }, a.state.replace("_", " ")), a.reason ? ` (${a.reason})` : ""),
        el("td", { class: "num" }, age(a.since)),
        contact,
        el("td", { class: "num", "data-occupancy": JSON.stringify([a.busy_s, a.worked_s, a.state, a.since]) },
          occupancy(a.busy_s, a.worked_s, a.state, a.since)),
        el("td", { class: "num", "data-field": "handled" }, a.handled),
        el("td", { class: "num" }, secs(a.aht_s)),
        el("td", { "data-slot": "agent-actions", "data-agent": a.agent_id })));
    }
    if (!snap.agents.length) body.append(el("tr", {}, el("td", { class: "empty", colSpan: 8 }, "No agents in your teams")));
  }

  function renderAbandoned(snap) {
    const list = $("[data-testid=wb-abandoned]");
    list.replaceChildren();
    const rows = snap.queues.flatMap((q) => q.abandoned_contacts.map((r) => ({ ...r, queue: q.queue, channel: q.channel })));
    rows.sort((x, y) => y.at - x.at);
    for (const r of rows) {
      let action;
      if (r.callback_id) {
        action = el("span", { "data-field": "callback" }, `callback #${r.callback_id} scheduled`);
      } else {
        action = el("button", { type: "button", "data-action": "callback", "data-interaction": r.interaction_id },
          "Call back");
      }
      list.append(el("li", { "data-interaction": r.interaction_id },
        who(r), el("span", {}, `${r.queue} · ${r.channel}`), el("span", {}, `waited ${duration(r.waited_s)}`),
        el("span", {}, "hung up ", age(r.at), " ago"), action));
    }
    if (!rows.length) list.append(el("li", { class: "empty" }, "No abandoned contacts"));
  }

  // busy ÷ (busy + wrap-up + ready) time, growing live from `since` in the current state
  function occupancy(busy, worked, state, since) {
    const extra = Math.max(0, (Date.now() + skew - since) / 1000);
    if (state === "busy") busy += extra;
    if (state === "busy" || state === "ready" || state === "wrap_up") worked += extra;
    return worked > 0 ? `${Math.round((1000 * busy) / worked) / 10}%` : "–";
  }

  function render(snap) {
    skew = snap.at - Date.now();
    renderQueues(snap);
    renderWaiting(snap);
    renderAlerts(snap);
    renderAgents(snap);
    renderAbandoned(snap);
    document.body.dataset.seq = String(snap.seq);
    document.dispatchEvent(new CustomEvent("wallboard:update", { detail: snap }));
  }

  // ages keep growing between frames (display only: no request is made)
  setInterval(() => {
    const now = Date.now() + skew;
    for (const node of document.querySelectorAll("[data-since]")) {
      node.textContent = duration((now - Number(node.dataset.since)) / 1000);
    }
    for (const node of document.querySelectorAll("[data-occupancy]")) {
      node.textContent = occupancy(...JSON.parse(node.dataset.occupancy));
    }
  }, 1000);

  function send(msg) {
    return new Promise((resolve, reject) => {
      if (!ws || ws.readyState !== WebSocket.OPEN) { reject(new Error("not connected")); return; }
      const id = `wb${++counter}`;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ ...msg, request_id: id }));
    });
  }

  function onMessage(ev) {
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    if (msg.type === "wallboard") { render(msg); return; }
    const waiter = msg.request_id ? pending.get(msg.request_id) : null;
    if (waiter) {
      pending.delete(msg.request_id);
      if (msg.type === "error") waiter.reject(Object.assign(new Error(msg.message), { code: msg.code }));
      else waiter.resolve(msg);
    }
  }

  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("button[data-action=callback]");
    if (!btn) return;
    btn.disabled = true;
    try {
      const reply = await send({ type: "wallboard_callback", interaction_id: Number(btn.dataset.interaction) });
      status(`Callback #${reply.callback_id} scheduled to ${reply.number}`);
    } catch (e) {
      btn.disabled = false;
      status(`Callback refused: ${e.message}`, true);
    }
  });

  function connect() {
    const conn = $("[data-testid=wb-conn]");
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(scheme + location.host + "/ws/wallboard");
    ws.addEventListener("open", () => { backoff = 500; conn.textContent = "live"; conn.className = "wb-conn live"; });
    ws.addEventListener("message", onMessage);
    ws.addEventListener("close", (ev) => {
      conn.textContent = "reconnecting…";
      conn.className = "wb-conn down";
      for (const w of pending.values()) w.reject(new Error("connection lost"));
      pending.clear();
      if (ev.code === 4401) { location.href = "/login"; return; }
      const delay = backoff * (0.8 + Math.random() * 0.4);
      backoff = Math.min(backoff * 2, 15000);
      setTimeout(connect, delay);
    });
  }

  window.wallboard = { send };
  connect();
})();
