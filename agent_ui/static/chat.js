/* Agent console: web chats (docs/protocol.md, chat_* messages). console.js owns the socket and
 * hands every server message to the listeners of window.ccConsole.on(); this file sends with
 * ccConsole.send().
 *
 * Each chat gets a tab: the transcript beside the customer's record, a composer with canned
 * responses, End, Transfer, and the wrap-up form once the chat has ended. A message shows only
 * once the server has stored it (chat_message); unsent ones are listed as pending and resent with
 * the same client_id after a reconnect. Message HTML comes from the server, cleaned by nh3;
 * everything else goes in with textContent.
 */
(function () {
  "use strict";

  const $ = (id) => document.querySelector('[data-testid="' + id + '"]');
  const el = (tag, attrs, text) => {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") n.className = v;
      else n.setAttribute(k, v);
    }
    if (text !== undefined && text !== null) n.textContent = String(text);
    return n;
  };
  const TIER = { vip: "VIP", key: "Key", regular: "Regular" };

  const state = {
    hello: null, canned: [], offers: new Map(), chats: new Map(), active: null, nextId: 1,
  };
  const send = (msg, onError) => window.ccConsole && window.ccConsole.send(msg, onError);
  const toast = (t, k) => window.ccConsole && window.ccConsole.toast(t, k);

  function root() { return $("chats"); }

  // ------------------------------------------------------------------ rendering
  function render() {
    const box = root();
    if (!box) return;
    const any = state.offers.size || state.chats.size;
    box.hidden = !any;
    const offers = $("chat-offers");
    offers.textContent = "";
    for (const o of state.offers.values()) {
      const card = el("div", { class: "chat-offer", "data-testid": "chat-offer", "data-interaction": String(o.interaction_id) });
      const c = o.pop && o.pop.card && o.pop.card.customer;
      card.appendChild(el("strong", {}, "Chat: " + o.customer_name));
      if (c) card.appendChild(el("span", { class: "tier-badge", "data-tier": c.tier_override || c.tier }, TIER[c.tier_override || c.tier] || c.tier));
      card.appendChild(el("span", { class: "muted" }, o.verified ? " signed in on the website" : " from the chat form"));
      const accept = el("button", { type: "button", class: "btn btn-success", "data-testid": "chat-accept" }, "Accept");
      accept.addEventListener("click", () => { accept.disabled = true; send({ type: "chat_accept", offer_id: o.offer_id }, () => { accept.disabled = false; }); });
      const decline = el("button", { type: "button", class: "btn btn-ghost", "data-testid": "chat-decline" }, "Decline");
      decline.addEventListener("click", () => send({ type: "chat_decline", offer_id: o.offer_id }));
      card.append(accept, decline);
      offers.appendChild(card);
    }
    const tabs = $("chat-tabs");
    tabs.textContent = "";
    if (state.active === null || !state.chats.has(state.active)) state.active = state.chats.size ? [...state.chats.keys()][0] : null;
    for (const ch of state.chats.values()) {
      const unread = lastCustomerSeq(ch) > ch.readSent;
      const t = el("button", { type: "button", class: "chat-tab" + (ch.id === state.active ? " active" : ""), "data-testid": "chat-tab", "data-interaction": String(ch.id) },
        ch.name + (ch.state === "ended" ? " (ended)" : "") + (unread && ch.id !== state.active ? " •" : ""));
      t.addEventListener("click", () => { state.active = ch.id; render(); markRead(ch); });
      tabs.appendChild(t);
    }
    for (const ch of state.chats.values()) ch.node.hidden = ch.id !== state.active;
  }

  function lastCustomerSeq(ch) {
    let s = 0;
    for (const m of ch.messages.values()) if (m.sender === "customer" && m.seq > s) s = m.seq;
    return s;
  }

  function buildChat(m) {
    const node = el("section", { class: "chat", "data-testid": "chat", "data-interaction": String(m.interaction_id) });
    node.innerHTML = `
      <div class="chat-main">
        <div class="chat-head"><strong data-testid="chat-customer"></strong>
          <span class="chat-state" data-testid="chat-state"></span>
          <button type="button" class="btn btn-danger btn-small" data-testid="chat-end">End chat</button></div>
        <div class="chat-log" data-testid="chat-log" aria-live="polite"></div>
        <div class="chat-typing muted" data-testid="chat-typing"></div>
        <form class="chat-compose" data-testid="chat-compose">
          <select data-testid="chat-canned" aria-label="Canned response"><option value="">Canned responses…</option></select>
          <textarea rows="2" maxlength="100000" placeholder="Write a reply…" data-testid="chat-input" aria-label="Reply"></textarea>
          <button type="submit" class="btn btn-primary" data-testid="chat-send">Send</button>
        </form>
        <form class="chat-transfer" data-testid="chat-transfer">
          <select name="target_type" aria-label="Transfer to"><option value="agent">Agent</option><option value="queue">Queue</option></select>
          <input name="target" maxlength="64" required placeholder="username or queue" aria-label="Transfer target" data-testid="chat-transfer-target">
          <button type="submit" class="btn" data-testid="chat-transfer-submit">Transfer</button>
        </form>
        <form class="chat-wrapup" data-testid="chat-wrapup" hidden>
          <h3>Wrap-up</h3>
          <label class="field"><span>Disposition</span><select name="disposition" data-testid="chat-wrapup-disposition"></select></label>
          <label class="field"><span>Notes</span><textarea name="notes" rows="3" maxlength="10000" data-testid="chat-wrapup-notes"></textarea></label>
          <label class="check"><input type="checkbox" name="with_ticket" data-testid="chat-wrapup-ticket"> Open a ticket</label>
          <input name="subject" maxlength="200" placeholder="Ticket subject" data-testid="chat-wrapup-subject" hidden>
          <button type="submit" class="btn btn-primary" data-testid="chat-wrapup-submit">Save wrap-up</button>
        </form>
      </div>
      <aside class="chat-card" data-testid="chat-card"></aside>`;
    const ch = {
      id: m.interaction_id, name: m.customer_name, node, messages: new Map(), pending: new Map(),
      receipts: { delivered: 0, read: 0 }, deliveredSent: 0, readSent: 0, state: m.state, typingOn: false, typingTimer: null,
    };
    const q = (id) => node.querySelector('[data-testid="' + id + '"]');
    ch.q = q;
    q("chat-end").addEventListener("click", () => send({ type: "chat_end", interaction_id: ch.id }));
    const canned = q("chat-canned");
    for (const c of state.canned) canned.appendChild(el("option", { value: c }, c.length > 60 ? c.slice(0, 57) + "…" : c));
    canned.addEventListener("change", () => { if (canned.value) { q("chat-input").value = canned.value; canned.value = ""; q("chat-input").focus(); } });
    q("chat-compose").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const input = q("chat-input");
      const text = input.value;
      if (!text.trim()) return;
      input.value = "";
      const cid = "a" + Date.now().toString(36) + "-" + (state.nextId++);
      ch.pending.set(cid, text);
      renderLog(ch);
      typing(ch, false);
      send({ type: "chat_send", interaction_id: ch.id, client_id: cid, text }, () => {
        ch.pending.delete(cid);
        if (!input.value) input.value = text;
        renderLog(ch);  // console.js shows the error itself
      });
    });
    q("chat-input").addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); q("chat-compose").requestSubmit(); }
    });
    q("chat-input").addEventListener("input", () => {
      typing(ch, true);
      clearTimeout(ch.typingTimer);
      ch.typingTimer = setTimeout(() => typing(ch, false), 2500);
    });
    q("chat-transfer").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const f = ev.target;
      send({ type: "chat_transfer", interaction_id: ch.id, target_type: f.target_type.value, target: f.target.value.trim() });
    });
    const wf = q("chat-wrapup");
    const sel = q("chat-wrapup-disposition");
    for (const d of (state.hello && state.hello.dispositions) || []) sel.appendChild(el("option", { value: d.code }, d.label));
    q("chat-wrapup-ticket").addEventListener("change", (ev) => { q("chat-wrapup-subject").hidden = !ev.target.checked; });
    wf.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const msg = { type: "chat_wrapup", interaction_id: ch.id, disposition: sel.value, notes: wf.notes.value };
      if (wf.with_ticket.checked) msg.ticket = { type: "service_request", subject: wf.subject.value.trim() || "Web chat" };
      const btn = q("chat-wrapup-submit");
      btn.disabled = true;
      send(msg, () => { btn.disabled = false; });
    });
    return ch;
  }

  function renderCard(ch, card) {
    const box = ch.q("chat-card");
    box.textContent = "";
    if (!card) { box.appendChild(el("p", { class: "muted" }, "No customer record")); return; }
    const c = card.customer;
    const head = el("div", { class: "card-head" });
    head.appendChild(el("h2", { "data-testid": "chat-card-name" }, c.name));
    const tier = c.tier_override || c.tier;
    head.appendChild(el("span", { class: "tier-badge", "data-tier": tier, "data-testid": "chat-card-tier" }, TIER[tier] || tier));
    box.appendChild(head);
    const cps = el("ul", { class: "contact-points" });
    for (const cp of card.contact_points || []) cps.appendChild(el("li", {}, cp.kind + ": " + cp.value));
    box.appendChild(cps);
    box.appendChild(el("h3", {}, "Recent interactions"));
    const tl = el("ol", { class: "timeline" });
    for (const i of (card.recent_interactions || []).slice(0, 5)) {
      tl.appendChild(el("li", {}, i.channel + " · " + (i.disposition_code || i.state) + (i.notes ? " — " + i.notes : "")));
    }
    box.appendChild(tl);
    box.appendChild(el("h3", {}, "Open tickets"));
    const tk = el("ul", { class: "tickets" });
    for (const t of card.open_tickets || []) tk.appendChild(el("li", {}, t.number + " · " + t.subject));
    box.appendChild(tk);
  }

  function renderLog(ch) {
    const log = ch.q("chat-log");
    log.textContent = "";
    const seqs = [...ch.messages.keys()].sort((a, b) => a - b);
    let lastAgent = 0;
    for (const s of seqs) if (ch.messages.get(s).sender === "agent") lastAgent = s;
    for (const s of seqs) {
      const m = ch.messages.get(s);
      const n = el("div", { class: "chat-msg " + m.sender, "data-testid": "chat-message", "data-seq": String(s), "data-sender": m.sender });
      n.appendChild(el("span", { class: "who" }, m.sender === "customer" ? ch.name : (m.author || m.sender)));
      const body = el("span", { class: "body", "data-testid": "chat-message-body" });
      body.innerHTML = m.html;  // cleaned by nh3 on the server
      n.appendChild(body);
      log.appendChild(n);
      if (s === lastAgent && ch.receipts.delivered >= s) {
        log.appendChild(el("div", { class: "chat-receipt", "data-testid": "chat-receipt" }, ch.receipts.read >= s ? "Read" : "Delivered"));
      }
    }
    for (const [cid, text] of ch.pending) log.appendChild(el("div", { class: "chat-msg agent pending", "data-testid": "chat-pending", "data-client-id": cid }, text));
    log.scrollTop = log.scrollHeight;
    const ended = ch.state === "ended";
    ch.q("chat-state").textContent = ended ? "Ended" : "Active";
    ch.q("chat-compose").hidden = ended;
    ch.q("chat-transfer").hidden = ended;
    ch.q("chat-end").hidden = ended;
    ch.q("chat-wrapup").hidden = !ended;
  }

  function typing(ch, on) {
    if (on === ch.typingOn || ch.state !== "active") return;
    ch.typingOn = on;
    send({ type: "chat_typing", interaction_id: ch.id, on });
  }

  function ackSeen(ch) {
    const s = lastCustomerSeq(ch);
    if (s > ch.deliveredSent) { ch.deliveredSent = s; send({ type: "chat_seen", interaction_id: ch.id, seq: s, status: "delivered" }); }
    markRead(ch);
  }
  function markRead(ch) {
    const s = lastCustomerSeq(ch);
    if (state.active === ch.id && document.visibilityState === "visible" && s > ch.readSent) {
      ch.readSent = s;
      send({ type: "chat_seen", interaction_id: ch.id, seq: s, status: "read" });
    }
  }
  document.addEventListener("visibilitychange", () => { const ch = state.chats.get(state.active); if (ch) markRead(ch); });

  // ------------------------------------------------------------------ messages from the server
  const handlers = {
    hello(m) {
      state.hello = m;
      state.offers.clear();
      for (const ch of state.chats.values()) ch.node.remove();
      // keep unsent texts across the reconnect: they are resent when the chat comes back
      state.keep = new Map([...state.chats.values()].map((ch) => [ch.id, ch.pending]));
      state.chats.clear();
      render();
    },
    chat_hello(m) { state.canned = m.canned || []; },
    chat_offer(m) { state.offers.set(m.offer_id, m); render(); },
    chat_withdrawn(m) {
      if (state.offers.delete(m.offer_id)) toast("The chat offer from the queue was withdrawn (" + m.reason.replace(/_/g, " ") + ")", "info");
      render();
    },
    chat_started(m) {
      for (const [k, o] of state.offers) if (o.interaction_id === m.interaction_id) state.offers.delete(k);
      let ch = state.chats.get(m.interaction_id);
      if (!ch) {
        ch = buildChat(m);
        state.chats.set(ch.id, ch);
        $("chat-panes").appendChild(ch.node);
        state.active = ch.id;
      }
      ch.state = m.state;
      ch.receipts = { delivered: m.receipts.delivered, read: m.receipts.read };
      ch.q("chat-customer").textContent = m.customer_name + (m.verified ? " (signed in)" : "");
      for (const msg of m.messages) ch.messages.set(msg.seq, msg);
      renderCard(ch, m.card);
      const kept = state.keep && state.keep.get(ch.id);
      if (kept) {
        state.keep.delete(ch.id);
        for (const [cid, text] of kept) {
          if ([...ch.messages.values()].some((x) => x.client_id === cid)) continue;
          ch.pending.set(cid, text);
          send({ type: "chat_send", interaction_id: ch.id, client_id: cid, text });
        }
      }
      renderLog(ch);
      render();
      ackSeen(ch);
    },
    chat_message(m) {
      const ch = state.chats.get(m.interaction_id);
      if (!ch) return;
      ch.messages.set(m.seq, m);
      if (m.client_id) ch.pending.delete(m.client_id);
      renderLog(ch);
      render();
      if (m.sender === "customer") ackSeen(ch);
    },
    chat_peer_typing(m) {
      const ch = state.chats.get(m.interaction_id);
      if (ch) ch.q("chat-typing").textContent = m.on ? ch.name + " is typing…" : "";
    },
    chat_receipt(m) {
      const ch = state.chats.get(m.interaction_id);
      if (!ch) return;
      if (m.seq > ch.receipts[m.status]) ch.receipts[m.status] = m.seq;
      renderLog(ch);
    },
    chat_ended(m) {
      const ch = state.chats.get(m.interaction_id);
      if (!ch) return;
      ch.state = "ended";
      ch.q("chat-typing").textContent = "";
      renderLog(ch);
      render();
    },
    wrapup_saved(m) {
      const ch = state.chats.get(m.interaction_id);
      if (!ch) return;
      ch.node.remove();
      state.chats.delete(ch.id);
      toast(m.disposition === "transferred" ? "Chat transferred." : "Chat wrap-up saved.", "ok");
      render();
    },
  };

  if (window.ccConsole) {
    window.ccConsole.on((m) => {
      const h = handlers[m.type];
      if (h) h(m);
    });
  }
})();
