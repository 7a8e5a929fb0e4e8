// Administration page: talks to /api/v1 with the session cookie and the CSRF token.
// Every list is re-read from the server after a change: the page shows only confirmed state.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const status = document.querySelector('[data-testid="admin-status"]');

  function say(text, isError) {
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  async function api(method, path, body, contentType) {
    const headers = {"X-CSRF-Token": csrf};
    let payload;
    if (body !== undefined) {
      headers["Content-Type"] = contentType || "application/json";
      payload = contentType ? body : JSON.stringify(body);
    }
    const r = await fetch("/api/v1" + path, {method, headers, body: payload, credentials: "same-origin"});
    const data = await r.json().catch(() => ({}));
    if (!r.ok) {
      const err = new Error((data.error && data.error.message) || ("HTTP " + r.status));
      err.issues = (data.error && data.error.issues) || [];
      throw err;
    }
    return data;
  }

  function pairs(text) {  // "french=3, billing=2" -> {french: 3, billing: 2}
    const out = {};
    for (const part of (text || "").split(",")) {
      const [k, v] = part.split("=").map((s) => s.trim());
      if (k) { out[k] = Number(v || 0); }
    }
    return out;
  }

  function list(text) {
    return (text || "").split(",").map((s) => s.trim()).filter(Boolean);
  }

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (cls) { td.className = cls; }
    row.appendChild(td);
    return td;
  }

  function fill(testid, items, render) {
    const body = document.querySelector(`[data-testid="${testid}"] tbody`);
    body.replaceChildren();
    for (const item of items) {
      const tr = document.createElement("tr");
      render(tr, item);
      body.appendChild(tr);
    }
  }

  function fmt(obj) {
    return Object.entries(obj || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  }

  async function loadQueues() {
    const data = await api("GET", "/queues");
    fill("queues", data.items, (tr, q) => {
      tr.dataset.queue = q.name;
      cell(tr, q.name); cell(tr, q.label); cell(tr, fmt(q.skills)); cell(tr, q.teams.join(", "));
      cell(tr, q.active ? "yes" : "no");
    });
  }

  async function loadUsers() {
    const data = await api("GET", "/users");
    fill("users", data.items, (tr, u) => {
      tr.dataset.user = u.username;
      cell(tr, u.username); cell(tr, u.display_name); cell(tr, u.roles.join(", "));
      cell(tr, fmt(u.skills)); cell(tr, (u.teams || []).join(", "));
      cell(tr, u.disabled ? "disabled" : "active");
      const td = cell(tr, "");
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = u.disabled ? "Enable" : "Disable";
      b.addEventListener("click", () => run(async () => {
        await api("PATCH", `/users/${u.id}`, {disabled: !u.disabled});
        await loadUsers();
        return `${u.username} ${u.disabled ? "enabled" : "disabled"}`;
      }));
      td.appendChild(b);
    });
  }

  async function loadTeams() {
    const data = await api("GET", "/teams");
    const ul = document.querySelector('[data-testid="teams"]');
    ul.replaceChildren(...data.items.map((t) => {
      const li = document.createElement("li");
      li.textContent = t.label ? `${t.name} (${t.label})` : t.name;
      return li;
    }));
  }

  async function loadTokens() {
    const data = await api("GET", "/tokens");
    fill("tokens", data.items, (tr, t) => {
      cell(tr, t.id); cell(tr, t.name); cell(tr, t.user_id); cell(tr, t.role); cell(tr, t.revoked_at || "");
      const td = cell(tr, "");
      if (!t.revoked_at) {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = "Revoke";
        b.addEventListener("click", () => run(async () => {
          await api("DELETE", `/tokens/${t.id}`);
          await loadTokens();
          return `token ${t.id} revoked`;
        }));
        td.appendChild(b);
      }
    });
  }

  async function loadReasons() {
    const data = await api("GET", "/reason-codes");
    fill("reasons", data.items, (tr, r) => {
      cell(tr, r.code); cell(tr, r.label); cell(tr, r.active ? "yes" : "no");
    });
  }

  async function loadHours() {
    const data = await api("GET", "/hours");
    fill("hours", data.items, (tr, h) => {
      cell(tr, h.name); cell(tr, h.timezone); cell(tr, JSON.stringify(h.weekly), "json");
      cell(tr, JSON.stringify(h.holidays), "json"); cell(tr, data.live.includes(h.name) ? "live" : "");
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = "Delete";
      b.addEventListener("click", () => run(async () => {
        await api("DELETE", `/hours/${encodeURIComponent(h.name)}`);
        await loadHours();
        return `hours ${h.name} deleted`;
      }));
      cell(tr, "").appendChild(b);
    });
  }

  async function loadFlows() {
    const data = await api("GET", "/ivr/flows");
    fill("flows", data.items, (tr, v) => {
      cell(tr, v.name); cell(tr, v.version); cell(tr, v.active ? "active" : ""); cell(tr, v.created_by);
      const td = cell(tr, "");
      if (!v.active) {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = "Activate";
        b.addEventListener("click", () => run(async () => {
          const r = await api("POST", `/ivr/flows/${encodeURIComponent(v.name)}/versions/${v.version}/activate`);
          await loadFlows();
          return `${v.name} version ${v.version} active${r.live ? " and live" : ""}`;
        }));
        td.appendChild(b);
      }
    });
  }

  async function loadAudit() {
    const data = await api("GET", "/audit?limit=50");
    fill("audit", data.items, (tr, e) => {
      cell(tr, e.at); cell(tr, e.actor); cell(tr, e.action); cell(tr, `${e.entity} ${e.entity_id || ""}`);
      cell(tr, e.before ? JSON.stringify(e.before) : "", "json");
      cell(tr, e.after ? JSON.stringify(e.after) : "", "json");
    });
  }

  async function run(fn) {
    try {
      const message = await fn();
      await loadAudit();
      say(message || "saved");
    } catch (err) {
      say(err.message, true);
    }
  }

  const handlers = {
    async queue(f) {
      const body = {label: f.label.value || f.name.value, skills: pairs(f.skills.value),
                    teams: list(f.teams.value), sl_target_s: Number(f.sl_target_s.value || 20)};
      await api("PUT", `/queues/${encodeURIComponent(f.name.value)}`, body);
      await loadQueues();
      return `queue ${f.name.value} saved`;
    },
    async user(f) {
      const body = {username: f.username.value, password: f.password.value,
                    display_name: f.display_name.value || f.username.value, roles: list(f.roles.value),
                    skills: pairs(f.skills.value), teams: list(f.teams.value),
                    capacities: {voice: Number(f.cap_voice.value), chat: Number(f.cap_chat.value),
                                 email: Number(f.cap_email.value)}};
      if (f.extension.value) { body.extension = f.extension.value; }
      const u = await api("POST", "/users", body);
      await loadUsers();
      return `user ${u.username} created`;
    },
    async team(f) {
      await api("POST", "/teams", {name: f.name.value, label: f.label.value || null});
      await loadTeams();
      return `team ${f.name.value} created`;
    },
    async token(f) {
      const t = await api("POST", "/tokens", {user_id: Number(f.user_id.value), name: f.name.value,
                                               role: f.role.value});
      const p = document.querySelector('[data-testid="token-secret"]');
      p.textContent = `Token ${t.id} (shown once): ${t.token}`;
      p.hidden = false;
      await loadTokens();
      return `token ${t.id} created`;
    },
    async import(f) {
      const file = f.file.files[0];
      const report = await api("POST", `/customers/import?mode=${f.mode.value}`, await file.text(), "text/csv");
      const div = document.querySelector('[data-testid="import-report"]');
      const lines = report.rejected.map((r) => `line ${r.line}: ${r.reasons.join("; ")}`);
      const p = document.createElement("p");
      p.textContent = `${report.imported} of ${report.rows} rows imported, ${report.rejected.length} rejected`;
      const ul = document.createElement("ul");
      ul.replaceChildren(...lines.map((l) => { const li = document.createElement("li"); li.textContent = l; return li; }));
      div.replaceChildren(p, ul);
      return "import finished";
    },
    async reason(f) {
      await api("PUT", `/reason-codes/${encodeURIComponent(f.code.value)}`,
                {label: f.label.value, active: f.active.checked});
      await loadReasons();
      return `reason ${f.code.value} saved`;
    },
    async hours(f) {
      let weekly;
      try { weekly = JSON.parse(f.weekly.value); } catch (e) { throw new Error("weekly: not valid JSON"); }
      const holidays = {};
      if (f.country.value.trim()) { holidays.country = f.country.value.trim(); }
      if (f.dates.value.trim()) { holidays.dates = list(f.dates.value); }
      await api("PUT", `/hours/${encodeURIComponent(f.name.value)}`, {timezone: f.timezone.value, weekly, holidays});
      await loadHours();
      return `hours ${f.name.value} saved`;
    },
    async flow(f) {
      const list = document.querySelector('[data-testid="flow-issues"]');
      list.replaceChildren();
      try {
        const v = await api("POST", `/ivr/flows/${encodeURIComponent(f.name.value)}`,
                            await f.file.files[0].text(), "application/yaml");
        await loadFlows();
        return `${v.name} version ${v.version} stored (not active yet)`;
      } catch (err) {
        list.replaceChildren(...err.issues.map((i) => {
          const li = document.createElement("li");
          li.textContent = `line ${i.line}: ${i.severity}: ${i.message}`;
          return li;
        }));
        throw err;
      }
    },
    async erase(f) {
      const r = await api("POST", `/customers/${Number(f.id.value)}/erase`);
      return `customer ${r.customer_id} erased (${r.interactions} interactions anonymized)`;
    },
  };

  for (const form of document.querySelectorAll("form[data-form]")) {
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      run(() => handlers[form.dataset.form](form));
    });
  }

  run(async () => {
    await Promise.all([loadQueues(), loadUsers(), loadTeams(), loadTokens(), loadReasons(), loadFlows(), loadHours()]);
    return "";
  });
})();
