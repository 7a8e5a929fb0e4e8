/* The contact center's chat widget, embedded on a customer's website with one tag:
 *
 *   <script src="https://cc.example.com/widget/widget.js" data-site="shop" async></script>
 *
 * Optional: data-user-id and data-user-signature (hex HMAC-SHA256 of the user id with the site's
 * secret, made on the site's server) recognise a signed-in customer without the form.
 *
 * It talks to /ws/chat on the script's own origin (docs/chat.md). Rules: a message shows in the
 * conversation only once the server has stored it (the stored copy is the acknowledgement);
 * unacknowledged messages are resent with the same client_id after a reconnect, and the server
 * stores each once. Message HTML comes from the server, cleaned by nh3; everything else goes into
 * the page with textContent. Everything lives in a shadow root, so the host page's CSS and ours
 * do not mix.
 */
(function () {
  "use strict";
  const script = document.currentScript;
  if (!script || window.__ccChatWidget) return;
  window.__ccChatWidget = true;
  const SITE = script.dataset.site || "";
  const BASE = new URL(script.src, location.href);
  const WS_URL = (BASE.protocol === "https:" ? "wss://" : "ws://") + BASE.host + "/ws/chat?site=" +
    encodeURIComponent(SITE);
  const KEY = "cc-chat:" + SITE;
  const identity = script.dataset.userId && script.dataset.userSignature
    ? { user_id: script.dataset.userId, signature: script.dataset.userSignature } : null;

  const CSS = `
  :host { all: initial; }
  * { box-sizing: border-box; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
  [hidden] { display: none !important; }
  .launcher { position: fixed; right: 24px; bottom: 24px; z-index: 2147483000; border: 0; border-radius: 28px;
    background: #2457d6; color: #fff; font-size: 15px; font-weight: 600; padding: 14px 22px; cursor: pointer;
    box-shadow: 0 6px 20px rgba(0,0,0,.22); }
  .panel { position: fixed; right: 24px; bottom: 24px; z-index: 2147483001; width: 360px; max-width: calc(100vw - 32px);
    height: 540px; max-height: calc(100vh - 48px); background: #fff; color: #1d2330; border-radius: 14px;
    box-shadow: 0 12px 40px rgba(0,0,0,.25); display: flex; flex-direction: column; overflow: hidden; font-size: 14px; }
  header { background: #2457d6; color: #fff; padding: 12px 14px; display: flex; align-items: center; gap: 8px; }
  header .title { font-weight: 700; flex: 1; }
  header button { background: transparent; color: #fff; border: 1px solid rgba(255,255,255,.5); border-radius: 6px;
    padding: 4px 8px; cursor: pointer; font-size: 12px; }
  .status { padding: 8px 14px; background: #eef3ff; color: #1b44a8; font-size: 13px; border-bottom: 1px solid #dfe3ea; }
  .conn { padding: 4px 14px; background: #fff4e5; color: #8a5300; font-size: 12px; }
  .log { flex: 1; overflow-y: auto; padding: 12px; display: flex; flex-direction: column; gap: 6px; background: #f7f8fb; }
  .msg { max-width: 82%; padding: 8px 11px; border-radius: 12px; line-height: 1.4; word-wrap: break-word;
    overflow-wrap: anywhere; white-space: normal; }
  .msg.customer { align-self: flex-end; background: #2457d6; color: #fff; border-bottom-right-radius: 4px; }
  .msg.customer a { color: #fff; }
  .msg.agent, .msg.bot { align-self: flex-start; background: #fff; border: 1px solid #dfe3ea; border-bottom-left-radius: 4px; }
  .msg.system { align-self: center; background: transparent; color: #667085; font-size: 12px; }
  .who { display: block; font-size: 11px; color: #667085; margin-bottom: 2px; }
  .msg.customer .who { color: #dbe5ff; }
  .receipt { align-self: flex-end; font-size: 11px; color: #667085; margin-top: -3px; }
  .pending { align-self: flex-end; opacity: .6; font-style: italic; }
  .buttons { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 6px; }
  .buttons button, .scores button { border: 1px solid #2457d6; color: #2457d6; background: #fff; border-radius: 14px;
    padding: 4px 10px; cursor: pointer; }
  .typing { padding: 2px 14px; font-size: 12px; color: #667085; min-height: 18px; }
  form { padding: 12px 14px; display: flex; flex-direction: column; gap: 8px; }
  form.compose { flex-direction: row; border-top: 1px solid #dfe3ea; padding: 10px; }
  input, textarea { font: inherit; border: 1px solid #c9d0db; border-radius: 8px; padding: 8px 10px; width: 100%; }
  textarea { resize: none; }
  .primary { background: #2457d6; color: #fff; border: 0; border-radius: 8px; padding: 9px 14px; font-weight: 600; cursor: pointer; }
  .error { color: #c62828; font-size: 12px; padding: 0 14px; }
  .note { padding: 12px 14px; color: #344054; }
  .scores { display: flex; gap: 6px; padding: 0 14px 14px; }
  `;

  // ------------------------------------------------------------------ DOM
  const host = document.createElement("div");
  host.setAttribute("data-cc-chat", SITE);
  const root = host.attachShadow({ mode: "open" });
  try {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } catch (e) {
    const style = document.createElement("style");
    style.textContent = CSS;
    root.appendChild(style);
  }
  const el = (tag, attrs, text) => {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") n.className = v; else n.setAttribute(k, v);
    }
    if (text !== undefined && text !== null) n.textContent = String(text);
    return n;
  };
  const tid = (id) => root.querySelector('[data-testid="' + id + '"]');
  const show = (n, on) => { n.hidden = !on; };

  const launcher = el("button", { class: "launcher", type: "button", "data-testid": "chat-launcher" }, "Chat with us");
  const panel = el("div", { class: "panel", role: "dialog", "aria-label": "Chat", "data-testid": "chat-panel" });
  panel.hidden = true;
  panel.innerHTML = `
    <header><span class="title">Chat with us</span>
      <button type="button" data-testid="chat-end" hidden>End chat</button>
      <button type="button" data-testid="chat-minimize" aria-label="Minimize">–</button></header>
    <div class="conn" data-testid="chat-connection" hidden></div>
    <div class="status" data-testid="chat-status" hidden></div>
    <form data-testid="prechat-form" hidden>
      <p class="note" style="padding:0">Tell us who you are and we will connect you with an agent.</p>
      <input name="name" maxlength="200" required placeholder="Your name" data-testid="prechat-name" aria-label="Your name">
      <input name="email" type="email" maxlength="254" required placeholder="Email" data-testid="prechat-email" aria-label="Email">
      <input name="phone" maxlength="64" placeholder="Phone (optional)" data-testid="prechat-phone" aria-label="Phone">
      <button class="primary" type="submit" data-testid="prechat-submit">Start chat</button>
    </form>
    <form data-testid="leave-form" hidden>
      <p class="note" style="padding:0">No one is available right now. Leave us a message and we will answer by email.</p>
      <input name="name" maxlength="200" required placeholder="Your name" data-testid="leave-name" aria-label="Your name">
      <input name="email" type="email" maxlength="254" required placeholder="Email" data-testid="leave-email" aria-label="Email">
      <textarea name="text" rows="4" required placeholder="Your message" data-testid="leave-text" aria-label="Your message"></textarea>
      <button class="primary" type="submit" data-testid="leave-submit">Send message</button>
    </form>
    <div class="log" data-testid="chat-log" aria-live="polite" hidden></div>
    <div class="typing" data-testid="chat-typing" hidden></div>
    <div class="error" data-testid="chat-error" hidden></div>
    <form class="compose" data-testid="compose" hidden>
      <textarea name="text" rows="2" placeholder="Write a message…" data-testid="chat-input" aria-label="Message"></textarea>
      <button class="primary" type="submit" data-testid="chat-send">Send</button>
    </form>
    <div data-testid="survey" hidden><p class="note">How satisfied are you with this chat?</p><div class="scores"></div></div>
    <form data-testid="transcript-form" hidden><button class="primary" type="submit" data-testid="transcript-send">Email me the transcript</button></form>
    <p class="note" data-testid="chat-note" hidden></p>`;
  root.appendChild(launcher);
  root.appendChild(panel);
  const scores = tid("survey").querySelector(".scores");
  for (let s = 1; s <= 5; s++) {
    const b = el("button", { type: "button", "data-testid": "survey-" + s }, String(s));
    b.addEventListener("click", () => { if (send({ type: "survey", score: s })) scores.querySelectorAll("button").forEach((x) => { x.disabled = true; }); });
    scores.appendChild(b);
  }

  // ------------------------------------------------------------------ state (from the server only)
  const st = {
    ws: null, attempt: 0, status: null, chat: null, lastSeq: 0, ended: false,
    messages: new Map(),   // seq -> message
    pending: new Map(),    // client_id -> text, sent but not yet stored
    receipts: { delivered: 0, read: 0 }, nextId: 1, typingTimer: null, typingOn: false, open: false,
  };
  function saved() {
    try { return JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch (e) { return null; }
  }
  function save() {
    try {
      if (st.chat && !st.ended) sessionStorage.setItem(KEY, JSON.stringify({ chat_id: st.chat.chat_id, token: st.chat.token }));
      else sessionStorage.removeItem(KEY);
    } catch (e) { /* storage may be off */ }
  }

  function send(msg) {
    if (!st.ws || st.ws.readyState !== WebSocket.OPEN) { showError("Not connected. Reconnecting…"); return false; }
    st.ws.send(JSON.stringify(msg));
    return true;
  }
  function showError(text) {
    const e = tid("chat-error");
    e.textContent = text || "";
    show(e, !!text);
  }

  // ------------------------------------------------------------------ rendering
  function renderView() {
    const inChat = !!st.chat;
    show(tid("prechat-form"), !inChat && !identity && st.status && st.status.agents_available && !st.left);
    show(tid("leave-form"), !inChat && st.status && !st.status.agents_available && !st.left);
    show(tid("chat-log"), inChat);
    show(tid("compose"), inChat && !st.ended);
    show(tid("chat-end"), inChat && !st.ended);
    show(tid("survey"), st.ended && !st.surveyed);
    show(tid("transcript-form"), st.ended && !st.transcriptSent);
  }

  function renderLog() {
    const log = tid("chat-log");
    log.textContent = "";
    const seqs = [...st.messages.keys()].sort((a, b) => a - b);
    let lastCustomer = 0;
    for (const s of seqs) if (st.messages.get(s).sender === "customer") lastCustomer = s;
    for (const s of seqs) {
      const m = st.messages.get(s);
      const node = el("div", { class: "msg " + m.sender, "data-testid": "chat-message", "data-seq": String(m.seq), "data-sender": m.sender });
      if (m.sender === "agent" || m.sender === "bot") node.appendChild(el("span", { class: "who" }, m.author || (m.sender === "bot" ? "Assistant" : "Agent")));
      const body = el("span", { class: "body", "data-testid": "chat-message-body" });
      body.innerHTML = m.html;  // cleaned by nh3 on the server: text, <br> and http(s) links only
      node.appendChild(body);
      if (m.buttons && m.buttons.length && s === seqs[seqs.length - 1] && !st.ended) {
        const bar = el("div", { class: "buttons" });
        for (const b of m.buttons) {
          const btn = el("button", { type: "button", "data-testid": "bot-button" }, b.label);
          btn.addEventListener("click", () => sendText(b.value));
          bar.appendChild(btn);
        }
        node.appendChild(bar);
      }
      log.appendChild(node);
      if (s === lastCustomer && st.receipts.delivered >= s) {
        log.appendChild(el("div", { class: "receipt", "data-testid": "chat-receipt" }, st.receipts.read >= s ? "Read" : "Delivered"));
      }
    }
    for (const [cid, text] of st.pending) {
      log.appendChild(el("div", { class: "msg customer pending", "data-testid": "chat-pending", "data-client-id": cid }, text));
    }
    log.scrollTop = log.scrollHeight;
  }

  function setStatus(text) {
    const s = tid("chat-status");
    s.textContent = text || "";
    show(s, !!text);
  }
  function fmtWait(s) {
    if (s === null || s === undefined) return "";
    if (s < 60) return "less than a minute";
    const m = Math.round(s / 60);
    return "about " + m + (m === 1 ? " minute" : " minutes");
  }

  // ------------------------------------------------------------------ messages from the server
  const handlers = {
    status(m) { st.status = m; renderView(); if (!st.chat && identity && m.agents_available && st.open) startChat({}); },
    welcome(m) {
      st.chat = { chat_id: m.chat_id, token: m.token };
      save();
      if (m.state === "ended" || m.state === "done") st.ended = true;
      renderView();
      for (const [cid, text] of st.pending) send({ type: "send", client_id: cid, text });
    },
    message(m) {
      if (!st.messages.has(m.seq)) st.messages.set(m.seq, m);
      if (m.seq > st.lastSeq) st.lastSeq = m.seq;
      if (m.client_id && st.pending.has(m.client_id)) st.pending.delete(m.client_id);
      if (m.sender === "agent" || m.sender === "bot") seen(m.seq);
      renderLog();
    },
    queue(m) {
      if (m.position > 0) {
        setStatus("You are number " + m.position + " in the queue" + (m.estimated_wait_s !== null ? " · estimated wait " + fmtWait(m.estimated_wait_s) : ""));
      } else setStatus("Connecting you with an agent…");
    },
    agent(m) { setStatus(m.name + " is chatting with you"); },
    agent_typing(m) {
      const t = tid("chat-typing");
      t.textContent = m.on ? "The agent is typing…" : "";
      show(t, m.on);
    },
    receipt(m) {
      if (m.seq > st.receipts[m.status]) st.receipts[m.status] = m.seq;
      if (m.status === "read" && m.seq > st.receipts.delivered) st.receipts.delivered = m.seq;
      renderLog();
    },
    ended() {
      st.ended = true;
      setStatus("The chat has ended");
      show(tid("chat-typing"), false);
      save();
      renderView();
      renderLog();
    },
    survey_saved() {
      st.surveyed = true;
      const n = tid("chat-note");
      n.textContent = "Thank you for your feedback!";
      show(n, true);
      renderView();
    },
    transcript_sent(m) {
      st.transcriptSent = true;
      const n = tid("chat-note");
      n.textContent = "The transcript is on its way to " + m.to + ".";
      show(n, true);
      renderView();
    },
    left_message(m) {
      st.left = true;
      const n = tid("chat-note");
      n.textContent = "Thank you. Your message is saved as ticket " + m.ticket + "; we will answer by email.";
      show(n, true);
      renderView();
    },
    error(m) {
      if (m.client_id && st.pending.has(m.client_id)) {
        const text = st.pending.get(m.client_id);
        st.pending.delete(m.client_id);
        const input = tid("chat-input");
        if (!input.value) input.value = text;
        renderLog();
      }
      if (m.code === "not_found" && !st.chat) { try { sessionStorage.removeItem(KEY); } catch (e) { /* ignore */ } }
      showError(m.message);
    },
  };

  function seen(seq) {
    send({ type: "seen", seq, status: "delivered" });
    if (st.open && document.visibilityState === "visible") send({ type: "seen", seq, status: "read" });
  }

  // ------------------------------------------------------------------ actions
  function startChat(fields) {
    showError("");
    const msg = { type: "start" };
    for (const [k, v] of Object.entries(fields)) if (v) msg[k] = v;
    if (identity) msg.identity = identity;
    send(msg);
  }
  function sendText(text) {
    if (!text.trim()) return;
    const cid = "c" + Date.now().toString(36) + "-" + (st.nextId++);
    st.pending.set(cid, text);
    renderLog();
    send({ type: "send", client_id: cid, text });
    typing(false);
  }
  function typing(on) {
    if (on === st.typingOn || !st.chat || st.ended) return;
    st.typingOn = on;
    send({ type: "typing", on });
  }

  tid("prechat-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = ev.target;
    startChat({ name: f.name.value.trim(), email: f.email.value.trim(), phone: f.phone.value.trim() });
  });
  tid("leave-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = ev.target;
    send({ type: "leave_message", name: f.name.value.trim(), email: f.email.value.trim(), text: f.text.value });
  });
  tid("compose").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = tid("chat-input");
    const text = input.value;
    input.value = "";
    sendText(text);
  });
  tid("chat-input").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); tid("compose").requestSubmit(); }
  });
  tid("chat-input").addEventListener("input", () => {
    typing(true);
    clearTimeout(st.typingTimer);
    st.typingTimer = setTimeout(() => typing(false), 2500);
  });
  tid("chat-end").addEventListener("click", () => send({ type: "end" }));
  tid("transcript-form").addEventListener("submit", (ev) => { ev.preventDefault(); send({ type: "transcript" }); });
  launcher.addEventListener("click", () => {
    st.open = true;
    show(panel, true);
    show(launcher, false);
    if (!st.ws) connect();
    else if (!st.chat && identity && st.status && st.status.agents_available) startChat({});
    for (const s of st.messages.keys()) if (st.messages.get(s).sender !== "customer") seen(s);
  });
  tid("chat-minimize").addEventListener("click", () => { st.open = false; show(panel, false); show(launcher, true); });

  // ------------------------------------------------------------------ connection
  function connect() {
    const ws = new WebSocket(WS_URL);
    st.ws = ws;
    const conn = tid("chat-connection");
    ws.addEventListener("open", () => {
      st.attempt = 0;
      show(conn, false);
      const keep = st.chat || saved();
      if (keep) send({ type: "resume", chat_id: keep.chat_id, token: keep.token, last_seq: st.chat ? st.lastSeq : 0 });
    });
    ws.addEventListener("message", (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      const h = m && handlers[m.type];
      if (h) { try { h(m); } catch (e) { console.error("chat widget: " + m.type, e); } }
    });
    ws.addEventListener("close", () => {
      if (st.ws !== ws) return;
      const delay = Math.min(10000, 400 * 2 ** st.attempt) * (0.8 + Math.random() * 0.4);
      st.attempt += 1;
      conn.textContent = "Connection lost. Reconnecting…";
      show(conn, true);
      setTimeout(connect, delay);
    });
  }

  function mount() {
    document.body.appendChild(host);
    if (saved()) { st.open = true; show(panel, true); show(launcher, false); connect(); }
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
  // for tests and host pages: drop the socket (the widget reconnects and resumes by itself)
  window.ccChatWidget = { reconnect() { if (st.ws) st.ws.close(); } };
})();
