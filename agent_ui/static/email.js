/* Agent console, email contacts (docs/email.md, docs/protocol.md).
 *
 * console.js renders the offer (the customer card, Decline) and the wrap-up; this script adds the
 * email itself: "Open email" (email_accept), the conversation, the reply box (email_reply) and
 * "Done" (email_done). As everywhere in the console, only server messages change the view: a reply
 * appears in the conversation when `email_sent` says the smarthost took it. Text goes into the DOM
 * through textContent; HTML (already sanitized by the server with nh3) is shown only inside a
 * sandboxed frame without scripts, same-origin access or remote loads.
 */
(function () {
  "use strict";

  const cc = window.ccConsole;
  if (!cc) return;

  const el = (tag, attrs, text) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  };
  const fmtTime = (iso) => {
    const d = new Date(iso);
    return isNaN(d) ? (iso || "") : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  };
  const fmtSize = (n) => n < 1024 ? n + " B" : n < 1048576 ? Math.round(n / 1024) + " KB" : (n / 1048576).toFixed(1) + " MB";

  // ------------------------------------------------------------------ the panel
  const panel = el("section", { class: "panel email-panel", "data-testid": "email-panel" });
  panel.hidden = true;
  const head = el("div", { class: "email-head" });
  const subject = el("h2", { "data-testid": "email-subject" });
  const ticket = el("span", { class: "email-ticket", "data-testid": "email-ticket" });
  head.append(subject, ticket);
  const from = el("p", { class: "muted", "data-testid": "email-from" });
  const accept = el("button", { type: "button", class: "btn btn-primary", "data-testid": "email-accept" }, "Open email");
  const thread = el("ol", { class: "email-thread", "data-testid": "email-thread" });
  const form = el("form", { class: "email-reply", "data-testid": "email-reply-form" });
  const body = el("textarea", { name: "body", rows: "6", maxlength: "100000", required: "",
                                placeholder: "Write your reply…", "data-testid": "email-reply-body",
                                "aria-label": "Reply" });
  const sendBtn = el("button", { type: "submit", class: "btn btn-primary", "data-testid": "email-send" }, "Send reply");
  const done = el("button", { type: "button", class: "btn", "data-testid": "email-done" }, "Done");
  const ticketStatus = el("select", { "data-testid": "email-ticket-status", "aria-label": "Ticket after Done" });
  for (const [v, label] of [["", "Ticket: leave as is"], ["pending", "Ticket: pending (waiting for the customer)"],
                            ["solved", "Ticket: solved"]]) {
    ticketStatus.append(el("option", { value: v }, label));
  }
  const pending = el("span", { class: "pending", "data-testid": "email-sending" }, "sending…");
  pending.hidden = true;
  const actions = el("div", { class: "actions" });
  actions.append(sendBtn, ticketStatus, done, pending);
  form.append(body, actions);
  panel.append(head, from, accept, thread, form);
  const pop = document.querySelector('[data-testid="pop"]');
  (pop || document.body).prepend(panel);

  const state = { offer: null, interactionId: null, open: false, draft: null };

  function clear() {
    state.offer = null; state.interactionId = null; state.open = false; state.draft = null;
    panel.hidden = true;
    thread.textContent = "";
    subject.textContent = ""; ticket.textContent = ""; from.textContent = "";
    body.value = "";
    ticketStatus.value = "";
    pending.hidden = true;
  }

  function render() {
    accept.hidden = !(state.offer && !state.open);
    form.hidden = !state.open;
    sendBtn.disabled = !state.open || state.draft !== null;
    done.disabled = !state.open || state.draft !== null;
    ticketStatus.hidden = !ticket.textContent;
  }

  function messageItem(m) {
    const li = el("li", { class: "email-msg", "data-testid": "email-message" });
    li.dataset.direction = m.direction;
    li.dataset.status = m.status;
    const meta = el("div", { class: "email-meta" });
    meta.append(el("strong", {}, m.direction === "inbound" ? (m.from || "unknown sender") : "You → " + (m.to || []).join(", ")),
                el("span", { class: "muted" }, " · " + fmtTime(m.at)));
    if (m.status === "send_failed") meta.append(el("span", { class: "email-failed" }, " · not sent"));
    if (m.auto) meta.append(el("span", { class: "muted" }, " · automatic mail (" + m.auto + ")"));
    li.append(meta);
    if (m.subject) li.append(el("div", { class: "email-msg-subject" }, m.subject));
    for (const p of m.problems || []) li.append(el("p", { class: "alert email-problem", "data-testid": "email-problem" }, p));
    if (m.html) {
      // Inert: no allow-scripts, no allow-same-origin; the page's CSP blocks remote loads too.
      const frame = el("iframe", { class: "email-html", sandbox: "", referrerpolicy: "no-referrer",
                                   title: "Email content", "data-testid": "email-html" });
      frame.srcdoc = m.html;
      li.append(frame);
    } else {
      li.append(el("pre", { class: "email-text", "data-testid": "email-text" }, m.text || ""));
    }
    if ((m.attachments || []).length) {
      const ul = el("ul", { class: "email-attachments", "data-testid": "email-attachments" });
      for (const a of m.attachments) {
        const link = el("a", { href: "/email/attachments/" + encodeURIComponent(a.id), download: "",
                               rel: "noopener noreferrer" }, a.filename);
        const item = el("li");
        item.append(link, el("span", { class: "muted" }, " " + a.content_type + ", " + fmtSize(a.size)));
        ul.append(item);
      }
      li.append(ul);
    }
    return li;
  }

  accept.addEventListener("click", () => {
    if (state.offer) cc.send({ type: "email_accept", offer_id: state.offer.offer_id });
  });

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = body.value;
    if (!state.open || !text.trim()) return;
    state.draft = text;
    pending.hidden = false;
    render();
    const sent = cc.send({ type: "email_reply", interaction_id: state.interactionId, body: text }, () => {
      state.draft = null;  // refused: the text stays in the box to try again
      pending.hidden = true;
      render();
    });
    if (!sent) { state.draft = null; pending.hidden = true; render(); }
  });

  done.addEventListener("click", () => {
    if (!state.open) return;
    const msg = { type: "email_done", interaction_id: state.interactionId };
    if (ticketStatus.value) msg.ticket_status = ticketStatus.value;
    cc.send(msg);
  });

  // ------------------------------------------------------------------ server messages
  const handlers = {
    hello() { clear(); },
    offer(m) {
      if (m.channel !== "email") { clear(); return; }
      clear();
      state.offer = m;
      state.interactionId = m.interaction_id;
      panel.hidden = false;
      subject.textContent = "New email";
      from.textContent = "From " + (m.caller || "unknown sender");
      render();
    },
    offer_withdrawn(m) {
      if (state.offer && state.offer.offer_id === m.offer_id) clear();
    },
    email(m) {
      state.interactionId = m.interaction_id;
      state.open = true;
      panel.hidden = false;
      subject.textContent = m.subject || "(no subject)";
      ticket.textContent = m.ticket ? "Ticket " + m.ticket : "";
      from.textContent = m.customer_address ? "Replies go to " + m.customer_address : "No address to reply to";
      thread.textContent = "";
      for (const msg of m.messages) thread.append(messageItem(msg));
      render();
    },
    email_sent(m) {
      if (m.interaction_id !== state.interactionId) return;
      thread.append(messageItem({ direction: "outbound", status: "sent", to: [m.to], at: m.at,
                                  subject: m.subject, text: state.draft || "", problems: [], attachments: [] }));
      cc.toast("Reply sent to " + m.to + ".", "ok");
      state.draft = null;
      body.value = "";
      pending.hidden = true;
      render();
    },
    contact_state(m) {
      if (m.interaction_id === state.interactionId && m.state === "ended") { state.open = false; render(); }
    },
    wrapup_saved(m) {
      if (m.interaction_id === state.interactionId) clear();
    },
  };

  cc.on((m) => {
    const h = handlers[m.type];
    if (h) h(m);
  });
  clear();
})();
