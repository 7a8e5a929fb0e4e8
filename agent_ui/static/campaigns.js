/* Campaigns page (docs/campaigns.md): an agent joins a campaign and works its records (preview:
 * dial or skip; progressive/predictive: the pop as the customer answers), a supervisor watches
 * and controls one. Everything shown is what the server said over /ws/agent; nothing optimistic. */
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const q = (sel) => document.querySelector(sel);
  let ws = null;
  let counter = 0;
  let record = null; // the record on screen, as the server sent it
  let interaction = null;

  function send(msg) {
    if (!ws || ws.readyState !== WebSocket.OPEN) { showError("not connected"); return; }
    ws.send(JSON.stringify({ ...msg, request_id: "cp" + ++counter }));
  }
  function showError(text) { const e = $("error"); e.textContent = text; e.hidden = !text; }
  function setText(testid, text) { const el = q(`[data-testid="${testid}"]`); if (el) el.textContent = text; }
  function show(testid, on) { const el = q(`[data-testid="${testid}"]`); if (el) el.hidden = !on; }

  function renderRecord(msg) {
    record = msg.record;
    interaction = msg.interaction_id;
    const card = msg.pop && msg.pop.card;
    $("record").hidden = false;
    $("record").dataset.kind = msg.kind;
    setText("record-kind", msg.kind === "pop" ? "Customer on the line" : "Next record (preview)");
    setText("record-name", record.name);
    setText("record-phone", record.phone || "");
    setText("record-tier", card ? card.customer.tier : "unknown");
    setText("record-attempts", String(record.attempts));
    setText("script", msg.script || "");
    const sel = q('[data-testid="dispo-code"]');
    sel.replaceChildren(...(msg.dispositions || []).map((c) => new Option(c, c)));
    show("preview-actions", msg.kind === "preview");
    show("call-actions", msg.kind === "pop");
    show("dispo", msg.kind === "pop");
    setText("agent-state", msg.kind === "pop" ? "connected" : "preview");
  }

  function renderProgress(p) {
    $("supervisor").hidden = false;
    setText("sup-name", p.name); setText("sup-mode", p.mode); setText("sup-status", p.status);
    for (const k of ["dialed", "connected", "abandoned", "remaining"]) setText(k, String(p[k]));
    setText("abandon-rate", String(p.abandon_rate_pct)); setText("abandon-cap", String(p.abandon_cap_pct));
    setText("in-air", String(p.in_air)); setText("agents", `${p.agents.free} free of ${p.agents.joined}`);
    const list = (testid, obj) => q(`[data-testid="${testid}"]`).replaceChildren(...Object.entries(obj).map(([k, v]) => {
      const li = document.createElement("li"); li.textContent = `${k}: ${v}`; li.dataset.key = k; return li;
    }));
    list("dispositions", p.dispositions); list("outcomes", p.outcomes);
  }

  function onMessage(ev) {
    let msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    switch (msg.type) {
      case "campaign_joined":
        $("agent").hidden = false;
        setText("agent-campaign", `${msg.name} (${msg.mode}, ${msg.status})`);
        setText("agent-state", "joined");
        showError("");
        break;
      case "campaign_record": renderRecord(msg); break;
      case "campaign_state":
        setText("agent-state", msg.state);
        if (msg.state === "dialing") {
          interaction = msg.interaction_id;
          show("preview-actions", false); show("call-actions", true); show("dispo", true);
        } else if (msg.state === "wrap") {
          show("dispo", true);
        } else if (["done", "skipped", "left", "empty"].includes(msg.state)) {
          $("record").hidden = true; record = null; interaction = null;
        }
        break;
      case "contact_state":
        if (msg.interaction_id === interaction) setText("agent-state", msg.state);
        break;
      case "campaign_progress": renderProgress(msg); break;
      case "error": showError(msg.message || msg.code); break;
      default: break;
    }
  }

  $("pick").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = Number(new FormData($("pick")).get("campaign_id"));
    const action = ev.submitter ? ev.submitter.value : "join";
    send({ type: action === "watch" ? "campaign_watch" : "campaign_join", campaign_id: id });
  });
  $("dial").addEventListener("click", () => record && send({ type: "campaign_dial", record_id: record.id }));
  $("skip").addEventListener("click", () => {
    const reason = $("skip-reason").value.trim();
    if (!reason) { showError("say why you skip it"); return; }
    if (record) send({ type: "campaign_skip", record_id: record.id, reason });
  });
  $("answer").addEventListener("click", () => interaction && send({ type: "answer", interaction_id: interaction }));
  $("hangup").addEventListener("click", () => interaction && send({ type: "hangup", interaction_id: interaction }));
  $("dispo").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData($("dispo"));
    const msg = { type: "campaign_disposition", record_id: record.id, code: f.get("code") };
    if (f.get("notes")) msg.notes = f.get("notes");
    if (record) send(msg);
  });
  for (const b of document.querySelectorAll("[data-action]")) {
    b.addEventListener("click", () => {
      const id = Number(new FormData($("pick")).get("campaign_id"));
      send({ type: "campaign_control", campaign_id: id, action: b.dataset.action });
    });
  }

  function connect() {
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/agent");
    ws.addEventListener("open", () => { document.body.dataset.socket = "open"; setText("connection", "Connected"); });
    ws.addEventListener("message", onMessage);
    ws.addEventListener("close", (ev) => {
      document.body.dataset.socket = "closed";
      setText("connection", "Disconnected");
      if (ev.code === 4401) { location.assign("/login"); return; }
      setTimeout(connect, 1000);
    });
  }
  connect();
})();
