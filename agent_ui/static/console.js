/* Agent console: renders what the server says over /ws/agent (docs/protocol.md), nothing else.
 *
 * Rules: every state on screen comes from a server message (clicking Ready sends set_state; the
 * selector changes when agent_state arrives). Data goes into the DOM through textContent only.
 * The socket reconnects with exponential back-off; the server resumes the console (hello,
 * agent_state, offer, contact_state, wrapup), and `hello` clears the view first.
 */
(function () {
  "use strict";

  const $ = (id) => document.querySelector('[data-testid="' + id + '"]');
  const el = (tag, attrs, text) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v);
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  };
  const show = (node, on) => { node.hidden = !on; };

  const STATE_LABELS = {
    offline: "Offline", ready: "Ready", not_ready: "Not ready", busy: "Busy", wrap_up: "Wrap-up",
  };
  const CONTACT_LABELS = { ringing: "Ringing", talking: "Talking", held: "On hold", ended: "Ended" };
  const CHANNEL_LABELS = { voice: "Voice", chat: "Chat", email: "Email" };
  const WITHDRAWN_LABELS = {
    caller_abandoned: "The caller hung up", no_answer: "Not answered in time",
    declined: "Declined", timeout: "The offer timed out",
  };
  const TYPE_LABELS = {
    prospect: "Prospect", customer: "Customer", partner: "Partner", blacklisted: "Blacklisted",
  };
  const TIER_LABELS = { vip: "VIP", key: "Key", regular: "Regular" };
  const REASON_LABELS = {
    matched: "Matched on", priority_key: "Priority", tier_weight: "Customer tier",
    queue_weight: "Queue priority", wait_s: "Caller waited", idle_s: "You were idle",
    proficiency: "Your skill level", occupancy: "Your occupancy", strategy: "Strategy",
    escalation_boost: "Escalation boost", widened: "Skills widened", sticky: "Last agent",
  };

  // ------------------------------------------------------------------ state (from the server only)
  const view = {
    hello: null,
    skewMs: 0,            // server clock - local clock
    agent: { state: "offline", reason: null, since: null, wrapup_until: null },
    offer: null,          // the current offer message
    interactionId: null,
    contactState: null,   // last contact_state.state for interactionId
    recording: null,      // last recording_state.state for interactionId (PBX-confirmed)
    consult: null,        // last consult_state message while a consultation is under way
    conference: null,     // last conference_state while a three-way conference is active
    card: null,
    wrapup: null,         // the wrapup message while in wrap-up
  };
  const pending = new Map(); // request_id -> {type, onError}
  let nextRequest = 1;
  let ws = null;
  let opened = false;
  let attempt = 0;
  let reconnectTimer = null;

  // ------------------------------------------------------------------ sending
  function send(msg, onError) {
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      toast("Not connected. Your action was not sent.", "error");
      return null;
    }
    const requestId = "r" + nextRequest++;
    msg.request_id = requestId;
    pending.set(requestId, { type: msg.type, onError: onError || null });
    ws.send(JSON.stringify(msg));
    return requestId;
  }

  // ------------------------------------------------------------------ toasts
  function toast(text, kind) {
    const box = $("toasts");
    const t = el("div", { class: "toast toast-" + (kind || "info"), "data-testid": "toast" }, text);
    box.appendChild(t);
    setTimeout(() => t.remove(), 6000);
    while (box.children.length > 4) box.firstChild.remove();
  }

  // ------------------------------------------------------------------ formatting
  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    if (isNaN(d)) return iso;
    return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }
  function fmtMoney(s) {
    const n = Number(s);
    if (!isFinite(n)) return s || "";
    return n.toLocaleString(undefined, { style: "currency", currency: "USD", maximumFractionDigits: 0 });
  }
  function fmtSeconds(s) {
    s = Math.max(0, Math.round(s));
    const m = Math.floor(s / 60);
    return m ? m + " min " + (s % 60) + " s" : s + " s";
  }
  function serverNow() { return Date.now() + view.skewMs; }

  // ------------------------------------------------------------------ presence
  function reasonLabel(code) {
    const r = (view.hello && view.hello.reason_codes || []).find((x) => x.code === code);
    return r ? r.label : code;
  }

  function buildStateSelect() {
    const sel = $("state-select");
    sel.textContent = "";
    const opt = (value, label, disabled) => {
      const o = el("option", { value }, label);
      if (disabled) o.disabled = true;
      sel.appendChild(o);
    };
    opt("offline", "Offline", true);
    opt("ready", "Ready");
    for (const r of (view.hello && view.hello.reason_codes) || []) {
      opt("not_ready:" + r.code, "Not ready · " + r.label);
    }
    opt("busy", "Busy", true);
    opt("wrap_up", "Wrap-up", true);
  }

  function selectValueFor(agent) {
    if (agent.state === "not_ready") return "not_ready:" + (agent.reason || "");
    return agent.state;
  }

  function renderAgentState() {
    const a = view.agent;
    const sel = $("state-select");
    const value = selectValueFor(a);
    if (![...sel.options].some((o) => o.value === value)) {
      const label = a.state === "not_ready" ? "Not ready · " + reasonLabel(a.reason || "")
        : (STATE_LABELS[a.state] || a.state);
      const o = el("option", { value }, label);
      o.disabled = true;
      sel.appendChild(o);
    }
    sel.value = value;
    sel.dataset.state = a.state;
    sel.disabled = !(ws && ws.readyState === WebSocket.OPEN && view.hello);
    $("state-dot").dataset.state = a.state;
    show($("state-pending"), false);
    renderCountdown();
  }

  function renderCountdown() {
    const node = $("wrapup-countdown");
    const until = view.agent.state === "wrap_up" && (view.agent.wrapup_until || (view.wrapup && view.wrapup.until));
    if (!until) { show(node, false); return; }
    const left = (new Date(until).getTime() - serverNow()) / 1000;
    node.textContent = "Wrap-up " + (left > 0 ? fmtSeconds(left) + " left" : "time is up");
    node.classList.toggle("overdue", left <= 0);
    show(node, true);
  }
  setInterval(renderCountdown, 1000);

  $("state-select").addEventListener("change", (ev) => {
    const value = ev.target.value;
    const msg = value.startsWith("not_ready:")
      ? { type: "set_state", state: "not_ready", reason: value.slice("not_ready:".length) }
      : { type: "set_state", state: value };
    // Nothing optimistic: put the selector back to what the server said, and wait for agent_state.
    ev.target.value = selectValueFor(view.agent);
    if (send(msg, () => show($("state-pending"), false))) show($("state-pending"), true);
  });

  // ------------------------------------------------------------------ contact
  function clearContact() {
    view.offer = null; view.interactionId = null; view.contactState = null;
    view.card = null; view.wrapup = null;
    show($("contact-bar"), false);
    show($("customer-card"), false);
    show($("new-caller"), false);
    show($("customer-edit"), false);
    show($("ivr-panel"), false);
    show($("reasons-panel"), false);
    show($("wrapup"), false);
    show($("handoff"), false);
    show($("callback-offer"), false);
    show($("accept-callback"), false);
    show($("idle"), true);
    $("search-results").textContent = "";
    const cs = $("contact-state");
    cs.dataset.state = "none"; cs.textContent = "";
    view.recording = null;
    view.consult = null;
    view.conference = null;
    renderSoftphone();
  }

  function renderSoftphone() {
    const voice = view.offer ? view.offer.channel === "voice" : true;
    const st = view.contactState;
    show($("softphone"), voice || !!view.offer);
    $("answer").disabled = !(view.interactionId && st === "ringing");
    $("hangup").disabled = !(view.interactionId && (st === "ringing" || st === "talking" || st === "held"));
    // call controls: enabled from the PBX-confirmed state only (nothing is optimistic)
    $("hold").disabled = !(view.interactionId && st === "talking" && !view.conference);
    $("retrieve").disabled = !(view.interactionId && st === "held");
    show($("hold"), voice && st !== "held");
    show($("retrieve"), voice && st === "held");
    show($("transfer-form"), !!(voice && view.interactionId && (st === "talking" || st === "held")));
    const live = !!(voice && view.interactionId && (st === "talking" || st === "held"));
    const rec = live ? view.recording : null;
    show($("recording-state"), !!rec);
    $("recording-state").textContent = rec === "recording" ? "● Recording" : rec === "paused" ? "Recording paused" : "";
    const cons = live ? view.consult : null;
    show($("consult-form"), live && !cons && st === "talking");
    show($("escalate-form"), live && !cons);
    show($("consult"), !!cons);
    $("consult-state").textContent = cons ? "Consulting " + cons.target + ": " + cons.state : "";
    $("consult-complete").disabled = !(cons && cons.state === "talking");
    $("consult-conference").disabled = !(cons && cons.state === "talking");
    const conf = live ? view.conference : null;  // shown once ConfbridgeJoin confirmed all three
    show($("conference"), !!conf);
    $("conference-state").textContent = conf ? "Conference with " + conf.target + " (" + conf.parties.join(", ") + ")" : "";
    if (conf) { show($("consult-form"), false); show($("escalate-form"), false); show($("transfer-form"), false); }
    show($("recording-pause"), rec === "recording");
    show($("recording-resume"), rec === "paused");
    $("decline-offer").disabled = !(view.offer && (st === null || st === "ringing"));
    show($("answer"), voice);
    show($("hangup"), voice);
  }

  function onOffer(m) {
    view.offer = m;
    view.interactionId = m.interaction_id;
    view.contactState = null;
    view.wrapup = null;
    show($("wrapup"), false);
    show($("idle"), false);
    show($("contact-bar"), true);
    $("contact-channel").textContent = CHANNEL_LABELS[m.channel] || m.channel;
    $("contact-channel").dataset.channel = m.channel;
    $("contact-caller").textContent = m.caller || "Unknown number";
    $("contact-queue").textContent = m.queue ? "Queue: " + m.queue : "";
    const cs = $("contact-state");
    cs.dataset.state = "offered"; cs.textContent = "Offered";
    if (m.pop && m.pop.known && m.pop.card) renderCard(m.pop.card);
    else renderNewCaller(m.caller);
    if (m.pop && m.pop.crm === "unavailable") toast("CRM unavailable: only the caller's number is known.", "warn");
    renderIvr(m.ivr_path || []);
    renderReasons(m.reasons || []);
    const handoff = $("handoff");
    handoff.textContent = m.transfer
      ? "Transferred by " + (m.transfer.from || "another agent") + (m.transfer.notes ? ": " + m.transfer.notes : "")
      : "";
    show(handoff, !!m.transfer);
    // A callback: nothing rings until the agent chooses "Call back" (accept_callback).
    const cb = m.kind === "callback" ? m.callback : null;
    $("callback-offer").textContent = cb
      ? "Callback to " + cb.number + " · attempt " + cb.attempt + " of " + cb.max_attempts +
        (cb.last_outcome ? " · last: " + cb.last_outcome.replace("_", " ") : "") + (cb.note ? " · " + cb.note : "")
      : "";
    show($("callback-offer"), !!cb);
    show($("accept-callback"), !!cb);
    $("accept-callback").disabled = !cb;
    renderSoftphone();
    // The pop is on screen: the PBX may now ring our phone.
    send({ type: "ack_offer", offer_id: m.offer_id });
  }

  function onOfferWithdrawn(m) {
    if (view.offer && view.offer.offer_id === m.offer_id) {
      toast((WITHDRAWN_LABELS[m.reason] || m.reason) + ".", "warn");
      clearContact();
    }
  }

  function onContactState(m) {
    if (view.interactionId !== null && m.interaction_id !== view.interactionId) return;
    view.interactionId = m.interaction_id;
    view.contactState = m.state;
    show($("contact-bar"), true);
    show($("idle"), !view.offer && !view.card);
    const cs = $("contact-state");
    cs.dataset.state = m.state;
    cs.textContent = (CONTACT_LABELS[m.state] || m.state) + " · " + fmtTime(m.at);
    renderSoftphone();
  }

  function onWrapup(m) {
    view.interactionId = m.interaction_id;
    view.wrapup = m;
    const form = $("wrapup-form");
    form.reset();
    show($("wrapup-ticket"), false);
    const sel = $("wrapup-disposition");
    sel.textContent = "";
    sel.appendChild(el("option", { value: "" }, "Choose a disposition…"));
    for (const d of (view.hello && view.hello.dispositions) || []) {
      sel.appendChild(el("option", { value: d.code }, d.label));
    }
    sel.required = !!(m.required && m.required.disposition);
    $("wrapup-notes").required = !!(m.required && m.required.notes);
    $("wrapup-submit").disabled = false;
    show($("wrapup"), true);
    renderCountdown();
    renderSoftphone();
  }

  function onWrapupSaved(m) {
    if (view.wrapup && view.wrapup.interaction_id === m.interaction_id) {
      toast(m.ticket ? "Wrap-up saved. Ticket " + m.ticket.number + " created." : "Wrap-up saved.", "ok");
      clearContact();
    }
  }

  // ------------------------------------------------------------------ customer card
  function renderCard(card) {
    view.card = card;
    const c = card.customer;
    show($("new-caller"), false);
    show($("idle"), false);
    show($("customer-card"), true);
    $("customer-name").textContent = c.name;
    const tier = c.tier_override || c.tier;
    const badge = $("tier-badge");
    badge.textContent = TIER_LABELS[tier] || tier;
    badge.dataset.tier = tier;
    badge.title = c.tier_override ? "Tier set by hand (computed: " + (TIER_LABELS[c.tier] || c.tier) + ")" : "Tier";
    const type = $("customer-type");
    type.textContent = TYPE_LABELS[c.type] || c.type;
    type.dataset.type = c.type;
    show($("blacklist-warning"), c.type === "blacklisted");
    $("customer-ltv").textContent = fmtMoney(c.lifetime_value);
    $("customer-loyalty").textContent = c.loyalty;
    $("customer-csat").textContent = card.csat_average ? card.csat_average + " / 5 (" + card.csat_count + ")" : "No surveys";
    const tags = $("customer-tags");
    tags.textContent = "";
    for (const t of c.tags || []) tags.appendChild(el("li", { class: "tag" }, t));
    const cps = $("customer-contacts");
    cps.textContent = "";
    for (const cp of card.contact_points || []) {
      cps.appendChild(el("li", { dataset: { kind: cp.kind } }, (cp.label ? cp.label + ": " : "") + cp.value));
    }
    $("customer-notes").textContent = c.notes || "";
    renderTimeline(card.recent_interactions || []);
    renderTickets(card.open_tickets || []);
  }

  function renderTimeline(items) {
    const list = $("timeline");
    list.textContent = "";
    if (!items.length) list.appendChild(el("li", { class: "muted" }, "No earlier interactions."));
    for (const it of items) {
      const li = el("li", { class: "tl-item", dataset: { channel: it.channel } });
      li.appendChild(el("span", { class: "tl-channel" }, CHANNEL_LABELS[it.channel] || it.channel));
      const body = el("div", { class: "tl-body" });
      const head = el("div", { class: "tl-head" });
      head.appendChild(el("time", { datetime: it.created_at }, fmtTime(it.created_at)));
      head.appendChild(el("span", { class: "muted" }, " · " + it.direction + (it.queue ? " · " + it.queue : "")));
      if (it.disposition_code) head.appendChild(el("span", { class: "disposition" }, it.disposition_code));
      if (it.csat_score !== null && it.csat_score !== undefined) {
        head.appendChild(el("span", { class: "muted" }, " · CSAT " + it.csat_score));
      }
      body.appendChild(head);
      if (it.notes) body.appendChild(el("p", { class: "tl-notes" }, it.notes));
      li.appendChild(body);
      list.appendChild(li);
    }
  }

  function renderTickets(items) {
    const list = $("tickets");
    list.textContent = "";
    if (!items.length) list.appendChild(el("li", { class: "muted" }, "No open tickets."));
    for (const t of items) {
      const li = el("li", { class: "ticket-item" });
      li.appendChild(el("span", { class: "ticket-number" }, t.number));
      li.appendChild(el("span", { class: "ticket-type", dataset: { type: t.type } }, t.type.replace("_", " ")));
      li.appendChild(el("span", { class: "ticket-subject" }, t.subject));
      if (t.sla_due_at) {
        const overdue = new Date(t.sla_due_at).getTime() < serverNow();
        li.appendChild(el("span", { class: "sla" + (overdue ? " overdue" : "") },
          (overdue ? "SLA overdue since " : "SLA due ") + fmtTime(t.sla_due_at)));
      }
      list.appendChild(li);
    }
  }

  function renderNewCaller(caller) {
    view.card = null;
    show($("customer-card"), false);
    show($("idle"), false);
    show($("new-caller"), true);
    $("new-caller-number").textContent = caller || "";
    $("search-results").textContent = "";
    const form = $("create-customer");
    form.reset();
    form.elements.phone.value = caller || "";
  }

  function renderIvr(path) {
    const list = $("ivr-path");
    list.textContent = "";
    for (const step of path) {
      const li = el("li");
      li.appendChild(el("span", { class: "ivr-node" }, step.label || step.node));
      if (step.digits) {
        const keys = el("span", { class: "keys", "aria-label": "digits pressed" });
        for (const ch of step.digits) keys.appendChild(el("kbd", {}, ch));
        li.appendChild(keys);
      }
      if (step.result) li.appendChild(el("span", { class: "muted" }, " → " + step.result));
      list.appendChild(li);
    }
    show($("ivr-panel"), path.length > 0);
  }

  function renderReasons(reasons) {
    const list = $("reasons");
    list.textContent = "";
    for (const r of reasons) {
      let value = r.value;
      if (r.name === "wait_s" || r.name === "idle_s") value = fmtSeconds(r.value);
      else if (r.name === "occupancy") value = Math.round(r.value * 100) + " %";
      const li = el("li");
      li.appendChild(el("span", { class: "reason-name" }, REASON_LABELS[r.name] || r.name));
      const shown = r.note && (r.name === "matched" || r.name === "strategy" || r.name === "sticky")
        ? r.note : String(value) + (r.note ? " (" + r.note + ")" : "");
      li.appendChild(el("span", { class: "reason-value" }, shown));
      list.appendChild(li);
    }
    show($("reasons-panel"), reasons.length > 0);
  }

  function onCustomer(m) {
    const mine = (m.interaction_id !== null && m.interaction_id === view.interactionId)
      || (view.card && view.card.customer.id === m.card.customer.id);
    if (!mine) return;
    show($("customer-edit"), false);
    renderCard(m.card);
    toast("Customer saved.", "ok");
  }

  function onSearchResults(m) {
    const list = $("search-results");
    list.textContent = "";
    if (!m.items.length) list.appendChild(el("li", { class: "muted" }, "No customer matches “" + m.q + "”."));
    for (const it of m.items) {
      const li = el("li", { class: "result", "data-testid": "search-result" });
      const info = el("div");
      info.appendChild(el("strong", {}, it.name));
      const badge = el("span", { class: "tier-badge small", dataset: { tier: it.tier } }, TIER_LABELS[it.tier] || it.tier);
      info.appendChild(badge);
      info.appendChild(el("div", { class: "muted" }, [...it.phones, ...it.emails].join(" · ")));
      li.appendChild(info);
      const link = el("button", { type: "button", class: "btn btn-small", "data-testid": "link-" + it.id }, "Link");
      link.disabled = !view.interactionId;
      link.addEventListener("click", () => {
        if (view.interactionId) send({ type: "link_number", customer_id: it.id, interaction_id: view.interactionId });
      });
      li.appendChild(link);
      list.appendChild(li);
    }
    if (m.has_more) list.appendChild(el("li", { class: "muted" }, "More results: refine the search."));
  }

  // ------------------------------------------------------------------ forms
  $("answer").addEventListener("click", () => {
    if (view.interactionId) send({ type: "answer", interaction_id: view.interactionId });
  });
  $("hangup").addEventListener("click", () => {
    if (view.interactionId) send({ type: "hangup", interaction_id: view.interactionId });
  });
  $("hold").addEventListener("click", () => {
    if (view.interactionId) send({ type: "hold", interaction_id: view.interactionId });
  });
  $("retrieve").addEventListener("click", () => {
    if (view.interactionId) send({ type: "retrieve", interaction_id: view.interactionId });
  });
  $("escalate-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = ev.target.elements;
    const target = f.target.value.trim(), reason = f.reason.value.trim();
    if (!view.interactionId || !target || !reason) return;
    const msg = { type: "escalate", interaction_id: view.interactionId, reason };
    msg[f.kind.value === "supervisor" ? "supervisor" : "queue"] = target;
    send(msg);
  });
  $("dial-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const number = ev.target.elements.number.value.trim();
    if (number) send({ type: "dial", number });  // contact_state follows when the PBX confirms
  });
  $("accept-callback").addEventListener("click", () => {
    if (!view.offer || view.offer.kind !== "callback") return;
    // stays enabled only if the server refuses; contact_state follows when the PBX confirms
    if (send({ type: "accept_callback", offer_id: view.offer.offer_id },
             () => { $("accept-callback").disabled = false; })) $("accept-callback").disabled = true;
  });
  $("callback-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!view.card) return;
    const f = ev.target.elements;
    const msg = { type: "schedule_callback", customer_id: view.card.customer.id };
    if (f.at.value) msg.at = new Date(f.at.value).toISOString();  // local time -> UTC
    if (f.note.value.trim()) msg.note = f.note.value.trim();
    send(msg);
  });
  $("dial-customer").addEventListener("click", () => {
    if (view.card && !view.interactionId) send({ type: "dial", customer_id: view.card.customer.id });
  });
  $("consult-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = ev.target.elements;
    const target = f.target.value.trim();
    if (!view.interactionId || !target) return;
    send({ type: "consult", interaction_id: view.interactionId, target_type: f.target_type.value, target });
  });
  $("consult-complete").addEventListener("click", () => {
    if (view.interactionId) send({ type: "consult_complete", interaction_id: view.interactionId });
  });
  $("consult-cancel").addEventListener("click", () => {
    if (view.interactionId) send({ type: "consult_cancel", interaction_id: view.interactionId });
  });
  $("consult-conference").addEventListener("click", () => {
    if (view.interactionId) send({ type: "consult_conference", interaction_id: view.interactionId });
  });
  $("conference-leave").addEventListener("click", () => {
    if (view.interactionId) send({ type: "conference_leave", interaction_id: view.interactionId });
  });
  $("recording-pause").addEventListener("click", () => {
    if (view.interactionId) send({ type: "recording", interaction_id: view.interactionId, action: "pause" });
  });
  $("recording-resume").addEventListener("click", () => {
    if (view.interactionId) send({ type: "recording", interaction_id: view.interactionId, action: "resume" });
  });
  $("transfer-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = ev.target.elements;
    const target = f.target.value.trim();
    if (!view.interactionId || !target) return;
    const msg = { type: "transfer", interaction_id: view.interactionId, target_type: f.target_type.value, target };
    if (f.notes.value.trim()) msg.notes = f.notes.value.trim();
    send(msg);
  });
  $("decline-offer").addEventListener("click", () => {
    if (view.offer) send({ type: "decline_offer", offer_id: view.offer.offer_id });
  });

  $("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = ev.target.elements.q.value.trim();
    if (q) send({ type: "search", q });
  });

  $("create-customer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = ev.target.elements;
    const msg = { type: "create_customer", name: f.name.value.trim() };
    if (f.phone.value.trim()) msg.phone = f.phone.value.trim();
    if (f.email.value.trim()) msg.email = f.email.value.trim();
    if (view.interactionId) msg.interaction_id = view.interactionId;
    send(msg);
  });

  $("customer-edit-open").addEventListener("click", () => {
    if (!view.card) return;
    const c = view.card.customer;
    const f = $("customer-edit").elements;
    f.name.value = c.name;
    f.customer_type.value = c.type;
    f.tier_override.value = c.tier_override || "";
    f.notes.value = c.notes || "";
    show($("customer-edit"), true);
  });
  $("edit-cancel").addEventListener("click", () => show($("customer-edit"), false));
  $("customer-edit").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!view.card) return;
    const c = view.card.customer;
    const f = ev.target.elements;
    const msg = { type: "update_customer", customer_id: c.id };
    if (f.name.value.trim() !== c.name) msg.name = f.name.value.trim();
    if (f.customer_type.value !== c.type) msg.customer_type = f.customer_type.value;
    if ((f.notes.value || null) !== (c.notes || null)) msg.notes = f.notes.value || null;
    if ((f.tier_override.value || null) !== (c.tier_override || null)) msg.tier_override = f.tier_override.value || null;
    if (Object.keys(msg).length === 2) { show($("customer-edit"), false); return; }
    send(msg);
  });

  $("wrapup-ticket-toggle").addEventListener("change", (ev) => {
    show($("wrapup-ticket"), ev.target.checked);
    $("wrapup-ticket-subject").required = ev.target.checked;
  });
  $("wrapup-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!view.wrapup) return;
    const f = ev.target.elements;
    const msg = {
      type: "submit_wrapup", interaction_id: view.wrapup.interaction_id,
      disposition: f.disposition.value, notes: f.notes.value,
    };
    if (f.with_ticket.checked) {
      msg.ticket = { type: f.ticket_type.value, subject: f.ticket_subject.value.trim() };
      if (f.ticket_description.value.trim()) msg.ticket.description = f.ticket_description.value.trim();
    }
    // Stays on screen until wrapup_saved arrives; an error re-enables Submit.
    if (send(msg, () => { $("wrapup-submit").disabled = false; })) $("wrapup-submit").disabled = true;
  });

  // ------------------------------------------------------------------ messages
  const handlers = {
    hello(m) {
      view.hello = m;
      if (m.server_time) view.skewMs = new Date(m.server_time).getTime() - Date.now();
      buildStateSelect();
      clearContact();  // the resume messages that follow rebuild the view
      $("alerts").textContent = "";  // a supervisor's open alerts come again
      show($("alerts-panel"), false);
      renderAgentState();
    },
    agent_state(m) {
      view.agent = { state: m.state, reason: m.reason, since: m.since, wrapup_until: m.wrapup_until };
      renderAgentState();
    },
    offer: onOffer,
    offer_withdrawn: onOfferWithdrawn,
    contact_state: onContactState,
    consult_state(m) {
      if (view.interactionId !== null && m.interaction_id !== view.interactionId) return;
      view.consult = (m.state === "dialing" || m.state === "talking") ? m : null;
      if (m.state === "failed") toast("The consultation was not answered", "error");
      renderSoftphone();
    },
    conference_state(m) {
      if (view.interactionId !== null && m.interaction_id !== view.interactionId) return;
      view.conference = m.state === "active" ? m : null;
      if (m.state === "active") view.consult = null;  // the consultation became the conference
      if (m.state === "left") toast("You left the conference", "info");
      renderSoftphone();
    },
    recording_state(m) {
      if (view.interactionId !== null && m.interaction_id !== view.interactionId) return;
      view.recording = m.state;
      renderSoftphone();
    },
    wrapup: onWrapup,
    wrapup_saved: onWrapupSaved,
    customer: onCustomer,
    search_results: onSearchResults,
    callback_scheduled(m) {
      $("callback-form").reset();
      toast("Callback to " + m.number + " scheduled for " + fmtTime(m.due_at) + ".", "ok");
    },
    callback_state(m) {
      if (m.state === "retry") toast("Callback not reached (" + m.outcome.replace("_", " ") + "); next try " + fmtTime(m.next_at) + ".", "warn");
      if (m.state === "failed") toast("Callback given up after " + m.attempts + " attempts (" + m.outcome.replace("_", " ") + ").", "warn");
      if (m.state !== "connected" && view.interactionId === m.interaction_id) clearContact();
    },
    alert(m) {
      const list = $("alerts");
      const item = el("li", { dataset: { alert: String(m.alert_id) } }, fmtTime(m.at) + " · " + m.message);
      const ack = el("button", { type: "button", class: "btn btn-ghost btn-small" }, "Acknowledge");
      ack.addEventListener("click", () => {
        // removed when the server confirms (alert_cleared); an error re-enables the button
        if (send({ type: "ack_alert", alert_id: m.alert_id }, () => { ack.disabled = false; })) ack.disabled = true;
      });
      item.appendChild(ack);
      list.appendChild(item);
      show($("alerts-panel"), true);
      toast(m.message, "warn");
    },
    alert_cleared(m) {
      const item = document.querySelector('[data-testid="alerts"] [data-alert="' + m.alert_id + '"]');
      if (item) item.remove();
      show($("alerts-panel"), $("alerts").children.length > 0);
    },
    error(m) {
      toast(m.message, "error");
    },
  };

  function onMessage(ev) {
    let m;
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    if (!m || typeof m.type !== "string") return;
    if (m.request_id) {
      const req = pending.get(m.request_id);
      pending.delete(m.request_id);
      if (req && m.type === "error" && req.onError) req.onError(m);
    }
    const h = handlers[m.type];
    if (h) {
      try { h(m); } catch (e) { console.error("rendering " + m.type + " failed", e); }
    }
    for (const listener of listeners) {
      try { listener(m); } catch (e) { console.error("channel script on " + m.type + " failed", e); }
    }
  }

  // Channel scripts (email.js, …) loaded after this one see every server message after the
  // console's own handler, and send on the console's socket.
  const listeners = [];
  window.ccConsole = { send, toast, on: (fn) => { listeners.push(fn); } };

  // ------------------------------------------------------------------ connection
  function setConnection(status, text) {
    const c = $("connection");
    c.dataset.status = status;
    c.textContent = text;
  }

  async function sessionGone() {
    try {
      const r = await fetch("/console", { method: "HEAD", redirect: "manual", cache: "no-store" });
      return r.type === "opaqueredirect" || r.status === 401;
    } catch (e) {
      return false;
    }
  }

  function connect() {
    reconnectTimer = null;
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    setConnection("connecting", attempt ? "Reconnecting…" : "Connecting…");
    opened = false;
    ws = new WebSocket(scheme + location.host + "/ws/agent");
    ws.addEventListener("open", () => {
      opened = true;
      attempt = 0;
      setConnection("connected", "Connected");
    });
    ws.addEventListener("message", onMessage);
    ws.addEventListener("close", async (ev) => {
      pending.clear();
      $("state-select").disabled = true;
      show($("state-pending"), false);
      if (ev.code === 4401) { location.assign("/login"); return; }
      if (!opened && await sessionGone()) { location.assign("/login"); return; }
      const delay = ev.code === 4000 ? 0 : Math.min(15000, 500 * 2 ** attempt) * (0.8 + Math.random() * 0.4);
      attempt += 1;
      setConnection("disconnected", "Disconnected. Reconnecting in " + Math.ceil(delay / 1000) + " s…");
      reconnectTimer = setTimeout(connect, delay);
    });
  }

  window.addEventListener("online", () => {
    if (reconnectTimer) { clearTimeout(reconnectTimer); connect(); }
  });
  buildStateSelect();
  renderAgentState();
  clearContact();
  connect();
})();
