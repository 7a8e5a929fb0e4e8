// The reports page: each section reads one /api/v1/reports/… report (JSON), draws its chart
// (Chart.js, /static/vendor/) and its table from the same rows, and links the same report as CSV.
// What it shows is what the server returned; nothing is assumed (a callback shows once scheduled).
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const statusEl = document.querySelector("[data-testid=reports-status]");
  const controls = document.querySelector("[data-testid=controls]");
  const charts = {};
  const COLORS = ["#2f6fb2", "#e07b39", "#3a9d5d", "#b8456b", "#7a5cc2", "#c9a227", "#4aa3a8", "#8a8a8a"];

  function status(text, isError) {
    statusEl.textContent = text;
    statusEl.classList.toggle("error", Boolean(isError));
  }

  async function api(method, path, body) {
    const headers = {"X-CSRF-Token": csrf};
    let payload;
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const r = await fetch("/api/v1" + path, {method, headers, body: payload, credentials: "same-origin"});
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error((data.error && data.error.message) || ("HTTP " + r.status));
    return data;
  }

  function params(extra) {
    const f = new FormData(controls);
    const p = new URLSearchParams();
    for (const k of ["from", "to", "tz", "interval"]) p.set(k, f.get(k));
    for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
    return p;
  }

  const by = () => new FormData(controls).get("by");

  // section -> [path, query, chart(rep) -> Chart.js config or null]
  const REPORTS = {
    "intervals": () => ["/reports/contacts", params(), (rep) => ({
      type: "bar",
      data: {labels: rep.rows.map((r) => r.interval), datasets: [
        {label: "Contacts", data: rep.rows.map((r) => r.contacts), backgroundColor: COLORS[0], yAxisID: "y"},
        {label: "Service level %", type: "line", data: rep.rows.map((r) => pct(r.service_level)),
         borderColor: COLORS[1], backgroundColor: COLORS[1], yAxisID: "y1"}]},
      options: {scales: {y: {beginAtZero: true}, y1: {position: "right", min: 0, max: 100}}},
    })],
    "by": () => ["/reports/contacts", params({by: by(), totals: "1"}), (rep) => bars(rep, "key",
      [["ASA (s)", "asa_s"], ["AHT (s)", "aht_s"]])],
    "dispositions": () => ["/reports/contacts", params({by: "disposition", totals: "1"}),
      (rep) => pie(rep, "key", "contacts")],
    "tiers": () => ["/reports/tiers", params(), (rep) => bars(rep, "tier", [["ASA (s)", "asa_s"]])],
    "occupancy": () => ["/reports/occupancy", params({interval: "week"}), (rep) => bars(rep, "key",
      [["Occupancy %", (r) => pct(r.occupancy)]])],
    "not-ready": () => ["/reports/not-ready", params(), (rep) => pie(rep, "reason", "seconds")],
    "tickets": () => ["/reports/tickets", params(), (rep) => bars(rep, "type",
      [["Opened", "opened"], ["SLA breaches", "sla_breaches"], ["Escalations", "escalations"]])],
    "customers": () => ["/reports/customers", new URLSearchParams(), (rep) => pie(rep, "tier", "customers")],
    "movement": () => ["/reports/customers/movement", params(), (rep) => bars(rep, "day",
      [["Moved up", "moved_up"], ["Moved down", "moved_down"], ["Lost", "lost"]])],
    "at-risk": () => ["/reports/customers/at-risk", new URLSearchParams(), (rep) => bars(rep, "name",
      [["Complaints", "complaints"], ["Recent contacts", "recent_contacts"]])],
    // outbound campaigns (docs/campaigns.md): their whole life, not the date range
    "campaigns": () => ["/campaigns/report", new URLSearchParams({by: campaignBy()}), campaignChart],
  };

  const campaignBy = () => document.querySelector("[data-testid=campaign-by]").value;

  function campaignChart(rep) {  // by disposition: a doughnut; by segment: bars per campaign and value
    if (rep.by === "disposition") return pie(rep, "disposition", "records");
    const labelled = {rows: rep.rows.map((r) => Object.assign({label: r.campaign + " · " + r[rep.by]}, r))};
    return bars(labelled, "label", [["Records", "records"], ["Done", "done"], ["Pending", "pending"]]);
  }

  function pct(v) { return v === null || v === undefined ? null : Math.round(v * 1000) / 10; }

  function value(r, f) { return typeof f === "function" ? f(r) : r[f]; }

  function bars(rep, labelCol, series) {
    return {type: "bar", data: {labels: rep.rows.map((r) => String(r[labelCol])),
      datasets: series.map(([label, f], i) => ({label, data: rep.rows.map((r) => value(r, f)),
                                                backgroundColor: COLORS[i % COLORS.length]}))},
            options: {scales: {y: {beginAtZero: true}}}};
  }

  function pie(rep, labelCol, valueCol) {  // sums the rows per label
    const sums = new Map();
    for (const r of rep.rows) sums.set(r[labelCol], (sums.get(r[labelCol]) || 0) + Number(r[valueCol] || 0));
    return {type: "doughnut", data: {labels: [...sums.keys()], datasets: [{label: valueCol, data: [...sums.values()],
      backgroundColor: [...sums.keys()].map((_k, i) => COLORS[i % COLORS.length])}]}};
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function cell(v) { return v === null || v === undefined ? "" : String(v); }

  function table(name, rep) {
    const t = el("table", {"data-testid": "table-" + name});
    const head = t.createTHead().insertRow();
    for (const c of rep.columns) head.appendChild(el("th", {}, c));
    if (name === "at-risk") head.appendChild(el("th", {}, "callback"));
    const body = t.createTBody();
    for (const r of rep.rows) {
      const tr = body.insertRow();
      for (const c of rep.columns) {
        const td = tr.insertCell();
        if (name === "at-risk" && c === "name") {
          const a = el("a", {href: "#customer-" + r.customer_id, "data-customer": r.customer_id}, cell(r[c]));
          a.addEventListener("click", (ev) => { ev.preventDefault(); showCustomer(r.customer_id); });
          td.appendChild(a);
        } else {
          td.textContent = cell(r[c]);
        }
      }
      if (name === "at-risk") {
        const td = tr.insertCell();
        const b = el("button", {type: "button", class: "callback", "data-testid": "callback-" + r.customer_id},
                     "Call back");
        b.addEventListener("click", () => callback(r.customer_id, b));
        td.appendChild(b);
      }
    }
    return t;
  }

  async function load(name) {
    const section = document.querySelector(`[data-report="${name}"]`);
    const [path, query, chartOf] = REPORTS[name]();
    const rep = await api("GET", path + "?" + query.toString());
    for (const old of section.querySelectorAll(".chart-box, .table-box, .csv, .empty")) old.remove();
    if (charts[name]) { charts[name].destroy(); delete charts[name]; }
    const csv = new URLSearchParams(query);
    csv.set("format", "csv");
    const link = el("a", {class: "csv", href: "/api/v1" + path + "?" + csv.toString(), download: "",
                          "data-testid": "csv-" + name}, "Download CSV");
    section.appendChild(link);
    if (!rep.rows.length) {
      section.appendChild(el("p", {class: "empty"}, "No data in this range."));
    } else {
      const box = el("div", {class: "chart-box"});
      const canvas = el("canvas", {"data-testid": "chart-" + name, role: "img", "aria-label": name + " chart"});
      box.appendChild(canvas);
      section.appendChild(box);
      const config = chartOf(rep);
      config.options = Object.assign({responsive: true, maintainAspectRatio: false, animation: false}, config.options || {});
      charts[name] = new window.Chart(canvas, config);
      canvas.dataset.rendered = "1";
    }
    const tbox = el("div", {class: "table-box"});
    tbox.appendChild(table(name, rep));
    section.appendChild(tbox);
  }

  async function loadAll() {
    status("Loading…");
    document.querySelector(".by-name").textContent = by();
    const names = Object.keys(REPORTS);
    const results = await Promise.allSettled(names.map(load));
    const failed = results.map((r, i) => [r, names[i]]).filter(([r]) => r.status === "rejected");
    if (failed.length) status(failed.map(([r, n]) => n + ": " + r.reason.message).join("; "), true);
    else status("Shown: " + new FormData(controls).get("from") + " to " + new FormData(controls).get("to"));
  }

  async function showCustomer(id) {
    const box = document.getElementById("customer-record");
    const dl = box.querySelector("dl");
    dl.replaceChildren();
    try {
      const c = await api("GET", "/customers/" + id);
      const fields = [["Name", c.name], ["Tier", c.tier], ["Loyalty", c.loyalty], ["Type", c.type],
                      ["Lifetime value", c.lifetime_value],
                      ["Phones", (c.contact_points || []).filter((p) => p.kind === "phone").map((p) => p.value).join(", ")],
                      ["Emails", (c.contact_points || []).filter((p) => p.kind === "email").map((p) => p.value).join(", ")]];
      for (const [k, v] of fields) { dl.appendChild(el("dt", {}, k)); dl.appendChild(el("dd", {}, cell(v))); }
      const b = el("button", {type: "button", class: "callback", "data-testid": "record-callback"}, "Call back");
      b.addEventListener("click", () => callback(id, b));
      dl.appendChild(el("dt", {}, "Reach out"));
      const dd = el("dd");
      dd.appendChild(b);
      dl.appendChild(dd);
      box.hidden = false;
      box.dataset.customer = String(id);
    } catch (e) {
      status("Customer " + id + ": " + e.message, true);
    }
  }

  async function callback(id, button) {
    button.disabled = true;
    try {
      const cb = await api("POST", `/reports/customers/at-risk/${id}/callback`);
      const done = el("span", {class: "done", "data-testid": "callback-done-" + id},
                      `Callback #${cb.callback_id} scheduled to ${cb.number}`);
      button.replaceWith(done);
    } catch (e) {
      button.disabled = false;
      status("Callback: " + e.message, true);
    }
  }

  async function loadSubscription() {
    const s = await api("GET", "/reports/subscription");
    document.querySelector("[data-testid=sub-state]").textContent = s.subscribed
      ? `Subscribed: ${s.email} (${s.tz})` : "Not subscribed.";
  }

  document.querySelector("[data-form=subscribe]").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    try {
      await api("PUT", "/reports/subscription", {email: f.get("email"), tz: f.get("tz")});
      await loadSubscription();
    } catch (e) { status("Subscription: " + e.message, true); }
  });
  document.querySelector("[data-action=unsubscribe]").addEventListener("click", async () => {
    try { await api("DELETE", "/reports/subscription"); await loadSubscription(); } catch (e) { status(e.message, true); }
  });

  controls.addEventListener("submit", (ev) => { ev.preventDefault(); loadAll(); });
  document.querySelector("[data-testid=campaign-by]").addEventListener("change", () => {
    load("campaigns").then(() => status("Campaign results by " + campaignBy()),
                           (e) => status("campaigns: " + e.message, true));
  });

  // defaults: the last 7 days, in the browser's time zone when the server knows it
  const today = new Date();
  const iso = (d) => d.toISOString().slice(0, 10);
  const start = new Date(today.getTime() - 7 * 86400000);
  const q = new URLSearchParams(location.search);
  controls.elements.from.value = q.get("from") || iso(start);
  controls.elements.to.value = q.get("to") || iso(new Date(today.getTime() - 86400000));
  if (q.get("tz")) controls.elements.tz.value = q.get("tz");
  if (q.get("interval")) controls.elements.interval.value = q.get("interval");
  if (q.get("by")) controls.elements.by.value = q.get("by");
  loadAll();
  loadSubscription().catch((e) => status(e.message, true));
  const m = /^#customer-(\d+)$/.exec(location.hash);
  if (m) showCustomer(Number(m[1]));
})();
