// The tollgate console: everything goes through the admin API with the
// bearer token the operator typed once (kept in sessionStorage, this tab
// only). Text from the API is only ever set as textContent: a user's name
// or a channel's title is data, never markup.
"use strict";

const TOKEN_KEY = "tollgate.admin.token";

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function api(method, path, body) {
  const init = { method, headers: { Authorization: "Bearer " + token() } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (r.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
    throw new Error("unauthorized");
  }
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) {
    throw new Error(method + " " + path + ": " + r.status + " " + (data && (data.problems || data.error) || ""));
  }
  return data;
}

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function row(cells) {
  const tr = el("tr");
  for (const c of cells) {
    const td = el("td");
    if (c instanceof Node) td.append(c); else td.textContent = c === undefined || c === null ? "" : String(c);
    tr.append(td);
  }
  return tr;
}

function showError(e) {
  const p = document.getElementById("error");
  if (p) p.textContent = e ? String(e.message || e) : "";
}

// Ask for the token once; call `start` when there is one.
function withToken(start) {
  const login = document.getElementById("login");
  const app = document.getElementById("app");
  const logout = document.getElementById("logout");
  if (logout) logout.onclick = () => { sessionStorage.removeItem(TOKEN_KEY); location.reload(); };
  if (token()) {
    app.hidden = false;
    start();
    return;
  }
  login.hidden = false;
  login.onsubmit = (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
    login.hidden = true;
    app.hidden = false;
    start();
  };
}

async function health() {
  const badge = document.getElementById("health");
  try {
    const h = await (await fetch("/healthz")).json();
    badge.textContent = h.status + " · v" + h.version;
    badge.className = "badge " + (h.status === "ok" ? "ok" : "bad");
    const figures = document.getElementById("figures");
    if (figures) {
      figures.replaceChildren();
      const add = (label, value) => {
        const f = el("div", null, { class: "figure" });
        f.append(el("b", value), el("span", label));
        figures.append(f);
      };
      add("sessions", h.sessions);
      add("routes", h.routes.length);
      add("origins", h.origins.length);
      add("send path", h.send_path.http);
      if (h.control_plane) add("control plane", h.control_plane.healthy ? "in sync" : "behind");
      if (h.store) add("fleet store", h.store.healthy ? "healthy" : "down");
    }
  } catch (e) {
    badge.textContent = "unreachable";
    badge.className = "badge bad";
  }
}

async function sessions() {
  const list = document.getElementById("session-list");
  const data = await api("GET", "/api/v1/sessions");
  const byChannel = new Map();
  for (const s of data.sessions) {
    const key = s.route + " / " + (s.channel || "-");
    if (!byChannel.has(key)) byChannel.set(key, []);
    byChannel.get(key).push(s);
  }
  list.replaceChildren();
  if (data.sessions.length === 0) list.append(el("p", "No live session.", { class: "hint" }));
  for (const [channel, items] of byChannel) {
    list.append(el("h3", channel + " (" + items.length + ")"));
    const table = el("table");
    table.append(row(["session", "user", "device", "ip", "started", "bytes", ""]));
    for (const s of items) {
      const actions = el("span");
      const kick = el("button", "Kick", { class: "kick", "data-session": s.id, type: "button" });
      kick.onclick = () => api("DELETE", "/api/v1/sessions/" + s.id).then(refresh, showError);
      actions.append(kick);
      if (s.user) {
        const block = el("button", "Block user", { class: "block", "data-user": s.user, type: "button" });
        block.onclick = async () => {
          try {
            const bl = await api("GET", "/api/v1/blocklist");
            if (!bl.users.includes(s.user)) bl.users.push(s.user);
            // The whole list goes back: blocked tokens and networks stay blocked.
            await api("PUT", "/api/v1/blocklist", { users: bl.users, tokens: bl.tokens, ips: bl.ips });
            refresh();
          } catch (e) { showError(e); }
        };
        actions.append(" ", block);
      }
      table.append(row([s.id, s.user, s.device, s.ip, s.started, s.bytes, actions]));
    }
    list.append(table);
  }
}

const PAGE = 20;
let offset = 0;

async function users() {
  const q = document.getElementById("q").value.trim();
  const params = new URLSearchParams({ offset, limit: PAGE });
  if (q) params.set("q", q);
  const data = await api("GET", "/api/v1/users?" + params);
  const body = document.querySelector("#user-table tbody");
  body.replaceChildren();
  for (const u of data.users) {
    body.append(row([u.id, u.name, (u.packages || []).join(", "), u.region, u.max_sessions || "∞", u.disabled ? "disabled" : "active"]));
  }
  document.getElementById("page").textContent =
    data.total === 0 ? "none" : (offset + 1) + "–" + Math.min(offset + PAGE, data.total) + " of " + data.total;
  document.getElementById("prev").disabled = offset === 0;
  document.getElementById("next").disabled = offset + PAGE >= data.total;
}

async function channels() {
  const data = await api("GET", "/api/v1/channels");
  const body = document.querySelector("#channel-table tbody");
  body.replaceChildren();
  for (const c of data.channels) {
    const play = el("a", "Play", { href: "/console/player.html?channel=" + encodeURIComponent(c.name) });
    body.append(row([c.name, c.title, c.group, c.dvr_depth || "", play]));
  }
}

async function refresh() {
  showError(null);
  await Promise.all([health(), sessions(), users(), channels()]).catch(showError);
}

function startConsole() {
  document.getElementById("user-search").onsubmit = (ev) => { ev.preventDefault(); offset = 0; users().catch(showError); };
  document.getElementById("prev").onclick = () => { offset = Math.max(0, offset - PAGE); users().catch(showError); };
  document.getElementById("next").onclick = () => { offset += PAGE; users().catch(showError); };
  refresh();
  setInterval(() => { health(); sessions().catch(showError); }, 2000);
}

if (document.getElementById("session-list")) withToken(startConsole);
