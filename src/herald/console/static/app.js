// Herald console: a small single-page app over the public API. No build step, no CDN.
// The JWT from /authenticate lives in sessionStorage; every call sends it as a Bearer token,
// the live stream included (fetch streaming, so no token ever goes into a URL).

const API = "/api/v1";
const TOKEN_KEY = "herald.jwt";
const SEVERITY = { 0: "Info", 1: "Warn", 2: "Critical" };
const SEVERITY_COLOUR = { 0: "#1d4ed8", 1: "#d97706", 2: "#b91c1c" };
const main = document.getElementById("main");
let live = null; // the AbortController of the open live stream

// -- small helpers -----------------------------------------------------------------------
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}
const svg = (tag, attrs = {}) => {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
};
const time = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
const num = (n) => Number(n).toLocaleString();
const badge = (sev) => h("span", { class: `badge sev-${sev.id}` }, sev.description);
const endpointName = (e) => (e.endpoint ? e.endpoint.name || `#${e.endpoint.id}` : "");
// Device states (emnify's connectivity statuses), in the order the console shows them.
const STATUS_ORDER = [["ONLINE", 1], ["ATTACHED", 0], ["OFFLINE", 2], ["BLOCKED", 3]];
const statusBadge = (s) => h("span", { class: `badge st-${s.id}` }, s.description);
const RAT = { 1: "3G", 2: "2G", 6: "4G", 8: "NB-IoT", 9: "LTE-M", 10: "5G" };

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}` };
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(API + path, { ...options, headers });
  if (response.status === 401 && !path.startsWith("/authenticate")) {
    signOut();
    throw new ApiError(401, { title: "Signed out" });
  }
  const body = response.status === 204 ? null : await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body || {});
  return { body, headers: response.headers };
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  location.hash = "#/login";
}

function failure(err) {
  return h("p", { class: "error", role: "alert" }, err.message);
}

// -- routing -----------------------------------------------------------------------------
const routes = {
  login: viewLogin,
  dashboard: viewDashboard,
  events: viewEvents,
  device: viewDevice,
  devices: viewDevices,
  handlers: viewHandlers,
  rejected: viewRejected,
  catalog: viewCatalog,
};

async function route() {
  stopLive();
  closeDrawer();
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const signedIn = Boolean(sessionStorage.getItem(TOKEN_KEY));
  if (!signedIn && name !== "login") return void (location.hash = "#/login");
  const view = routes[name] || (signedIn ? viewDashboard : viewLogin);
  document.querySelector(".top").hidden = view === viewLogin;
  for (const a of document.querySelectorAll(".top nav a")) {
    a.toggleAttribute("aria-current", a.getAttribute("href") === `#/${name}`);
    if (a.getAttribute("href") === `#/${name}`) a.setAttribute("aria-current", "page");
  }
  main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try {
    await view(...rest.map(decodeURIComponent));
  } catch (err) {
    main.replaceChildren(failure(err));
  }
  main.focus();
}

// -- sign in -----------------------------------------------------------------------------
async function viewLogin() {
  const input = h("input", { id: "token", type: "password", autocomplete: "off", required: true });
  const message = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    {
      onsubmit: async (ev) => {
        ev.preventDefault();
        message.textContent = "";
        try {
          const response = await fetch(`${API}/authenticate`, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ application_token: input.value.trim() }),
          });
          const body = await response.json();
          if (!response.ok) throw new ApiError(response.status, body);
          sessionStorage.setItem(TOKEN_KEY, body.auth_token);
          location.hash = "#/dashboard";
        } catch (err) {
          message.textContent = `Sign-in failed: ${err.message}`;
        }
      },
    },
    h("label", { for: "token" }, "Application token", input),
    h("button", { type: "submit" }, "Sign in"),
    message,
  );
  main.replaceChildren(
    h(
      "section",
      { class: "panel login" },
      h("h1", {}, "Sign in to Herald"),
      h("p", { class: "muted" }, "Paste an application token (herald token create …). ",
        "It is exchanged for a short-lived session token kept only in this tab."),
      form,
    ),
  );
  input.focus();
}

// -- charts (inline SVG) -----------------------------------------------------------------
function stackedBars(rows, keys, colours, labels) {
  const times = [...new Set(rows.map((r) => r.time))].sort();
  const byTime = Object.fromEntries(times.map((t) => [t, {}]));
  for (const r of rows) byTime[r.time][r.key] = r.count;
  const totals = times.map((t) => keys.reduce((s, k) => s + (byTime[t][k] || 0), 0));
  const max = Math.max(1, ...totals);
  const W = 720, H = 200, pad = 28, bw = Math.max(2, (W - pad) / Math.max(times.length, 1) - 2);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H + 20}`, role: "img",
    "aria-label": `Events over time: ${num(totals.reduce((a, b) => a + b, 0))} in all` });
  for (const f of [0, 0.5, 1]) {
    const y = H - f * (H - 10);
    chart.append(svg("line", { x1: pad, x2: W, y1: y, y2: y, stroke: "#e5e7eb" }));
    const t = svg("text", { x: 0, y: y + 4, "font-size": 11, fill: "#4b5563" });
    t.textContent = Math.round(f * max);
    chart.append(t);
  }
  times.forEach((t, i) => {
    let y = H;
    const x = pad + i * (bw + 2);
    for (const k of keys) {
      const v = byTime[t][k] || 0;
      if (!v) continue;
      const bh = (v / max) * (H - 10);
      y -= bh;
      const rect = svg("rect", { x, y, width: bw, height: bh, fill: colours[k] });
      const title = svg("title");
      title.textContent = `${time(t)} · ${labels[k]}: ${v}`;
      rect.append(title);
      chart.append(rect);
    }
  });
  if (times.length) {
    for (const i of [0, times.length - 1]) {
      const label = svg("text", { x: pad + i * (bw + 2), y: H + 15, "font-size": 11,
        fill: "#4b5563", "text-anchor": i ? "end" : "start" });
      label.textContent = new Date(times[i]).toLocaleString([], { hour: "2-digit",
        minute: "2-digit", day: "numeric", month: "short" });
      chart.append(label);
    }
  }
  const legend = h("div", { class: "legend" },
    keys.map((k) => h("span", {}, h("i", { style: `background:${colours[k]}` }), labels[k])));
  return h("div", { class: "chart" }, chart, legend);
}

function barList(rows, value, label, link) {
  if (!rows.length) return h("p", { class: "muted" }, "Nothing in this period.");
  const max = Math.max(...rows.map(value), 1);
  return h("div", { class: "bars" }, rows.map((r) => h("div", { class: "bar" },
    h("span", { class: "name", title: String(r.label ?? r.key) },
      link ? h("a", { href: link(r) }, r.label ?? r.key) : (r.label ?? r.key)),
    h("span", { class: "track", "aria-hidden": "true" },
      h("span", { class: "fill", style: `display:block;width:${(100 * value(r)) / max}%` })),
    h("span", { class: "mono" }, label(r)))));
}

// -- dashboard ---------------------------------------------------------------------------
async function viewDashboard() {
  const range = { from: new Date(Date.now() - 24 * 3600e3).toISOString() };
  const q = (p) => "?" + new URLSearchParams({ ...range, ...p });
  const [series, types, endpoints, volume, alerts, states] = await Promise.all([
    api("/event/stats" + q({ bucket: "hour", group: "severity" })),
    api("/event/stats" + q({ group: "type", limit: 8 })),
    api("/event/stats" + q({ group: "endpoint", limit: 8 })),
    api("/event/stats" + q({ group: "endpoint", order: "volume", limit: 8 })),
    api("/event?" + new URLSearchParams({ alert: "true", per_page: 8 })),
    api("/endpoint/status_counts"),
  ]);
  const s = series.body;
  const perStatus = Object.fromEntries(states.body.counts.map((c) => [c.status.description, c.count]));
  const critical = s.rows.filter((r) => r.key === 2).reduce((a, r) => a + r.count, 0);
  const deviceLink = (r) => `#/device/${r.key}`;
  main.replaceChildren(
    h("h1", {}, "Dashboard"),
    h("div", { class: "cards" },
      h("div", { class: "card" }, h("div", { class: "n" }, num(s.total)),
        h("div", { class: "l" }, "events, last 24 h")),
      h("div", { class: "card" }, h("div", { class: "n" }, num(critical)),
        h("div", { class: "l" }, "critical")),
      h("div", { class: "card" }, h("div", { class: "n" }, `${num(s.volume_mb.toFixed(1))} MB`),
        h("div", { class: "l" }, "data in closed sessions"))),
    h("div", { class: "cards", "aria-label": "Devices by status" },
      STATUS_ORDER.map(([name, id]) => h("a", { class: `card tile st-${id}`,
        href: `#/devices/${encodeURIComponent(`status=${name}`)}` },
        h("div", { class: "n" }, num(perStatus[name] || 0)),
        h("div", { class: "l" }, `${name.toLowerCase()} devices`)))),
    h("section", { class: "panel", "aria-labelledby": "over-time" },
      h("h2", { id: "over-time" }, "Events over time by severity"),
      stackedBars(s.rows, [0, 1, 2], SEVERITY_COLOUR, SEVERITY)),
    h("div", { class: "grid" },
      h("section", { class: "panel" }, h("h2", {}, "Top event types"),
        barList(types.body.rows, (r) => r.count, (r) => num(r.count),
          (r) => `#/events/${encodeURIComponent(`type=${r.key}`)}`)),
      h("section", { class: "panel" }, h("h2", {}, "Top endpoints by events"),
        barList(endpoints.body.rows, (r) => r.count, (r) => num(r.count), deviceLink)),
      h("section", { class: "panel" }, h("h2", {}, "Top endpoints by data volume"),
        barList(volume.body.rows, (r) => r.volume_mb, (r) => `${r.volume_mb.toFixed(2)} MB`,
          deviceLink))),
    h("section", { class: "panel" }, h("h2", {}, "Recent alerts"),
      alerts.body.length ? eventTable(alerts.body, { compact: true })
        : h("p", { class: "muted" }, "No alerts.")),
  );
}

// -- event log ---------------------------------------------------------------------------
const FILTERS = [
  ["q", "Query (q)", "type:3|5,severity:1"], ["type", "Type", "3|5"],
  ["severity", "Severity", null], ["source", "Source", null], ["endpoint", "Endpoint", "id or name"],
  ["iccid", "ICCID", ""], ["imsi", "IMSI", ""], ["imei", "IMEI", ""], ["tags", "Tags", ""],
  ["description", "Description", "contains"], ["from", "From", "2026-11-01T00:00:00Z"],
  ["until", "Until", ""], ["moniker", "Moniker", ""], ["provider", "Provider", ""],
];

function eventTable(events, { compact = false } = {}) {
  const body = h("tbody", {}, events.map((e) => eventRow(e, compact)));
  return h("table", {},
    h("thead", {}, h("tr", {}, h("th", {}, "Time"), h("th", {}, compact ? "Event" : "Type"),
      h("th", {}, "Severity"),
      compact ? null : h("th", { class: "hide-sm" }, "Endpoint"),
      compact ? null : h("th", { class: "hide-sm" }, "Description"))),
    body);
}

function eventRow(e, compact = false) {
  const open = () => openEvent(e);
  return h("tr", { class: "clickable", tabindex: 0, "data-id": e.id, onclick: open,
    onkeydown: (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); open(); } } },
    h("td", { class: "nowrap" }, time(e.timestamp)),
    h("td", {}, compact ? [e.description, h("div", { class: "muted" }, endpointName(e))]
      : `${e.event_type.id} · ${e.event_type.description}`),
    h("td", {}, badge(e.event_severity)),
    compact ? null : h("td", { class: "hide-sm" }, e.endpoint
      ? h("a", { href: `#/device/${e.endpoint.id}`, onclick: (ev) => ev.stopPropagation() },
        endpointName(e)) : ""),
    compact ? null : h("td", { class: "hide-sm" }, e.description));
}

async function viewEvents(preset = "") {
  const params = new URLSearchParams(preset);
  let page = Number(params.get("page") || 1);
  const inputs = {};
  const fields = FILTERS.map(([name, label, hint]) => {
    let input;
    if (name === "severity" || name === "source") {
      const options = name === "severity" ? SEVERITY : { 0: "Network", 1: "Policy Control", 2: "API" };
      input = h("select", { id: `f-${name}`, name },
        h("option", { value: "" }, "Any"),
        Object.entries(options).map(([v, l]) => h("option", { value: v }, l)));
    } else {
      input = h("input", { id: `f-${name}`, name, placeholder: hint || "" });
    }
    input.value = params.get(name) || "";
    inputs[name] = input;
    return h("label", { for: `f-${name}` }, label, input);
  });
  const alert = h("input", { type: "checkbox", id: "f-alert", checked: params.get("alert") === "true" });
  const status = h("p", { class: "muted", role: "status", "aria-live": "polite" });
  const results = h("div");
  const pager = h("div", { class: "pager" });
  const liveButton = h("button", { type: "button", class: "secondary live", "aria-pressed": "false",
    onclick: () => toggleLive() }, "Live");

  const filterParams = () => {
    const p = new URLSearchParams();
    for (const [name, input] of Object.entries(inputs)) if (input.value.trim()) p.set(name, input.value.trim());
    if (alert.checked) p.set("alert", "true");
    return p;
  };
  async function load() {
    const p = filterParams();
    p.set("page", page);
    p.set("per_page", 50);
    try {
      const { body, headers } = await api(`/event?${p}`);
      const pages = Number(headers.get("X-Total-Pages") || 1);
      status.textContent = `${num(headers.get("X-Total-Count") || body.length)} events · page ${page} of ${pages}`;
      results.replaceChildren(body.length ? eventTable(body) : h("p", { class: "muted" }, "No events match."));
      pager.replaceChildren(
        h("button", { type: "button", class: "secondary", disabled: page <= 1,
          onclick: () => { page -= 1; load(); } }, "← Newer"),
        h("button", { type: "button", class: "secondary", disabled: page >= pages,
          onclick: () => { page += 1; load(); } }, "Older →"));
    } catch (err) {
      results.replaceChildren(failure(err));
    }
  }
  function toggleLive() {
    if (live) {
      stopLive();
      liveButton.setAttribute("aria-pressed", "false");
      liveButton.textContent = "Live";
      return;
    }
    liveButton.setAttribute("aria-pressed", "true");
    liveButton.textContent = "● Live";
    page = 1;
    load().then(() => follow(filterParams(), (event) => {
      let tbody = results.querySelector("tbody");
      if (!tbody) {
        results.replaceChildren(eventTable([]));
        tbody = results.querySelector("tbody");
      }
      const row = eventRow(event);
      row.classList.add("fresh");
      tbody.prepend(row);
      while (tbody.children.length > 200) tbody.lastChild.remove();
    }, (message) => { status.textContent = message; }));
  }
  const form = h("form", { class: "panel", "aria-label": "Filters",
    onsubmit: (ev) => { ev.preventDefault(); page = 1; stopLive();
      liveButton.setAttribute("aria-pressed", "false"); liveButton.textContent = "Live"; load(); } },
    h("div", { class: "filters" }, fields, h("label", { class: "check", for: "f-alert" }, alert, "Alerts only")),
    h("div", { class: "toolbar" }, h("button", { type: "submit" }, "Apply filters"),
      h("button", { type: "button", class: "ghost", onclick: () => {
        for (const input of Object.values(inputs)) input.value = "";
        alert.checked = false; page = 1; load(); } }, "Clear"),
      h("span", { class: "spacer" }), liveButton));
  main.replaceChildren(h("h1", {}, "Events"), form,
    h("section", { class: "panel" }, status, results, h("div", { class: "toolbar" }, pager)));
  await load();
}

// The live stream over fetch: SSE framing parsed by hand, resumed with Last-Event-ID.
async function follow(params, onEvent, onStatus) {
  const controller = new AbortController();
  live = controller;
  let lastId = null;
  while (live === controller) {
    let closedBy = null; // the server's reason, when it ends the stream itself
    try {
      const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}` };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const response = await fetch(`${API}/event/stream?${params}`, { headers, signal: controller.signal });
      if (!response.ok) {
        const problem = await response.json().catch(() => ({}));
        onStatus(`Live stream refused: ${problem.detail || response.status}`);
        if (response.status === 401) signOut();
        return;
      }
      onStatus("Live: new events appear at the top.");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const message = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let data = null, type = "event";
          for (const line of message.split("\n")) {
            if (line.startsWith("id: ")) lastId = line.slice(4);
            else if (line.startsWith("event: ")) type = line.slice(7);
            else if (line.startsWith("data: ")) data = line.slice(6);
          }
          if (data && type === "closed") closedBy = JSON.parse(data).reason;
          else if (data) onEvent(JSON.parse(data));
        }
      }
    } catch (err) {
      if (controller.signal.aborted) return;
    }
    if (live === controller) {
      onStatus(closedBy ? `Live stream closed (${closedBy}); reconnecting…`
        : "Live stream interrupted; reconnecting…");
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

function stopLive() {
  if (live) live.abort();
  live = null;
}

// -- the event drawer --------------------------------------------------------------------
function tree(value, key = null) {
  if (value !== null && typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    const summary = key === null ? "event" : `${key} ${Array.isArray(value) ? `[${entries.length}]` : "{…}"}`;
    return h("details", { open: true }, h("summary", {}, summary),
      entries.map(([k, v]) => tree(v, k)));
  }
  const cls = value === null ? "z" : typeof value === "string" ? "s" : "n";
  return h("div", { class: "kv" }, h("span", { class: "k" }, `${key}: `),
    h("span", { class: cls }, value === null ? "null" : typeof value === "string" ? `"${value}"` : String(value)));
}

let drawerReturn = null;
function openEvent(event) {
  drawerReturn = document.activeElement;
  const drawer = document.getElementById("drawer");
  document.getElementById("drawer-title").textContent =
    `${event.event_type.description} · ${time(event.timestamp)}`;
  const copy = h("button", { type: "button", class: "secondary",
    onclick: () => navigator.clipboard?.writeText(JSON.stringify(event, null, 2)) }, "Copy JSON");
  document.getElementById("drawer-body").replaceChildren(
    h("p", {}, badge(event.event_severity), " ", h("span", { class: "mono" }, `id ${event.id}`)),
    h("p", {}, event.description),
    event.endpoint ? h("p", {}, h("a", { href: `#/device/${event.endpoint.id}` },
      `Open ${endpointName(event)}'s timeline`)) : null,
    h("div", { class: "tree", "aria-label": "Event JSON" }, tree(event)),
    h("div", { class: "toolbar" }, copy));
  drawer.hidden = false;
  document.getElementById("drawer-close").focus();
}

function closeDrawer() {
  const drawer = document.getElementById("drawer");
  if (drawer.hidden) return;
  drawer.hidden = true;
  if (drawerReturn && document.contains(drawerReturn)) drawerReturn.focus();
}

// -- device timeline ---------------------------------------------------------------------
function kindOf(e) {
  const t = e.event_type.id;
  if (t === 3 || t === 5) return "session";
  if (/quota/i.test(e.event_type.description)) return "quota";
  if (e.alert || e.event_severity.id === 2) return "alert";
  return "other";
}

async function viewDevice(id) {
  if (!id) {
    const input = h("input", { id: "device-id", inputmode: "numeric", required: true });
    main.replaceChildren(h("h1", {}, "Devices"), h("form", { class: "panel",
      onsubmit: (ev) => { ev.preventDefault(); location.hash = `#/device/${input.value.trim()}`; } },
      h("label", { for: "device-id" }, "Endpoint id", input),
      h("div", { class: "toolbar" }, h("button", { type: "submit" }, "Open timeline"))));
    const top = await api("/event/stats?group=endpoint&limit=12&from=" +
      new Date(Date.now() - 7 * 86400e3).toISOString());
    main.append(h("section", { class: "panel" }, h("h2", {}, "Most active endpoints, last 7 days"),
      barList(top.body.rows, (r) => r.count, (r) => num(r.count), (r) => `#/device/${r.key}`)));
    return;
  }
  const state = deviceState(id); // the connectivity panel, asked for beside the timeline
  const usage = usagePanel(id); // the daily usage, asked for beside the timeline too
  const list = (await api(`/endpoint/${encodeURIComponent(id)}/event?per_page=200`)).body;
  const name = list.length ? endpointName(list[0]) : `#${id}`;
  const attach = list.find((e) => e.event_type.id === 1 || e.event_type.id === 2);
  const opened = list.filter((e) => e.event_type.id === 3).length;
  const closed = list.filter((e) => e.event_type.id === 5);
  const volume = closed.reduce((s, e) => s + Number(e.detail?.volume?.total || 0), 0);
  const quota = list.find((e) => kindOf(e) === "quota");
  const items = list.map((e) => {
    const v = e.event_type.id === 5 && e.detail?.volume ? ` · ${Number(e.detail.volume.total).toFixed(3)} MB` : "";
    const where = e.detail?.country?.name ? ` · ${e.detail.name || ""} ${e.detail.country.name}` : "";
    return h("li", { class: `k-${kindOf(e)}` },
      h("div", {}, h("strong", {}, e.event_type.description), " ", badge(e.event_severity)),
      h("div", { class: "muted" }, time(e.timestamp), v, where),
      h("div", {}, h("button", { type: "button", class: "ghost", onclick: () => openEvent(e) }, "Details")));
  });
  main.replaceChildren(
    h("h1", {}, `Device ${name}`),
    h("div", { class: "cards" },
      h("div", { class: "card" }, h("div", { class: "n" }, attach ? attach.detail?.country?.name || "Attached" : "—"),
        h("div", { class: "l" }, attach ? `last attach ${time(attach.timestamp)}` : "no attach seen")),
      h("div", { class: "card" }, h("div", { class: "n" }, `${opened} / ${closed.length}`),
        h("div", { class: "l" }, "sessions opened / closed")),
      h("div", { class: "card" }, h("div", { class: "n" }, `${volume.toFixed(2)} MB`),
        h("div", { class: "l" }, "data volume")),
      h("div", { class: "card" }, h("div", { class: "n" }, quota ? "Quota event" : "OK"),
        h("div", { class: "l" }, quota ? quota.description : "no quota events"))),
    h("section", { class: "panel", "aria-labelledby": "tl" }, h("h2", { id: "tl" }, `Timeline (${list.length} events)`),
      items.length ? h("ol", { class: "timeline" }, items) : h("p", { class: "muted" }, "No events for this endpoint.")));
  main.querySelector("h1").after(await state);
  main.querySelector("section[aria-labelledby=tl]").before(await usage);
}

// The device's state as Herald keeps it: status, the network it is on, the open session.
async function deviceState(id) {
  const panel = h("section", { class: "panel", "aria-labelledby": "conn" },
    h("h2", { id: "conn" }, "Connectivity"));
  let device;
  try {
    device = (await api(`/endpoint?${new URLSearchParams({ endpoint: id })}`)).body[0];
  } catch (err) {
    panel.append(failure(err));
    return panel;
  }
  if (!device) {
    panel.append(h("p", { class: "muted" }, "No state for this endpoint yet."));
    return panel;
  }
  const loc = device.location;
  const pdp = device.pdp_context;
  const row = (label, ...value) => [h("dt", {}, label), h("dd", {}, ...value)];
  panel.append(h("dl", { class: "facts" },
    row("Status", statusBadge(device.status)),
    row("Services", device.services?.length ? device.services.join(", ") : "none"),
    row("Last event", time(device.last_seen)),
    row("Network", loc ? [loc.operator?.name || "unknown operator", loc.country?.name ? ` · ${loc.country.name}` : ""] : "—"),
    row("Network updated", loc ? time(loc.last_updated) : "—"),
    row("Session", pdp ? [`open since ${time(pdp.tunnel_created)}`,
      pdp.apn ? ` · APN ${pdp.apn}` : "", pdp.rat_type in RAT ? ` · ${RAT[pdp.rat_type]}` : "",
      pdp.ue_ip_address ? ` · ${pdp.ue_ip_address}` : ""] : "no open session"),
    device.sim_status ? row("SIM", device.sim_status) : null,
    device.quota_status ? row("Quota", device.quota_status) : null));
  return panel;
}

// -- devices -----------------------------------------------------------------------------
async function viewDevices(preset = "") {
  const params = new URLSearchParams(preset);
  let page = Number(params.get("page") || 1);
  let status = params.get("status") || "";
  const query = h("input", { id: "d-q", placeholder: "country:Germany,quiet:6h" });
  query.value = params.get("q") || "";
  const name = h("input", { id: "d-name", placeholder: "tracker" });
  name.value = params.get("name") || "";
  const tabs = h("div", { class: "tabs", role: "group", "aria-label": "Status" });
  const summary = h("p", { class: "muted", role: "status", "aria-live": "polite" });
  const results = h("div");
  const pager = h("div", { class: "pager" });

  async function load() {
    const p = new URLSearchParams({ page, per_page: 50 });
    if (status) p.set("status", status);
    if (query.value.trim()) p.set("q", query.value.trim());
    if (name.value.trim()) p.set("name", name.value.trim());
    try {
      const [{ body, headers }, counts] = await Promise.all([api(`/endpoint?${p}`), api("/endpoint/status_counts")]);
      const per = Object.fromEntries(counts.body.counts.map((c) => [c.status.description, c.count]));
      const tab = (value, label, count) => h("button", { type: "button", class: "secondary",
        "aria-pressed": String(status === value), onclick: () => { status = value; page = 1; load(); } },
        `${label} · ${num(count)}`);
      tabs.replaceChildren(tab("", "All", counts.body.total),
        ...STATUS_ORDER.map(([n]) => tab(n, n[0] + n.slice(1).toLowerCase(), per[n] || 0)));
      const pages = Number(headers.get("X-Total-Pages") || 1);
      summary.textContent = `${num(headers.get("X-Total-Count") || body.length)} devices · page ${page} of ${pages}`;
      results.replaceChildren(body.length ? deviceTable(body) : h("p", { class: "muted" }, "No devices match."));
      pager.replaceChildren(
        h("button", { type: "button", class: "secondary", disabled: page <= 1,
          onclick: () => { page -= 1; load(); } }, "← Previous"),
        h("button", { type: "button", class: "secondary", disabled: page >= pages,
          onclick: () => { page += 1; load(); } }, "Next →"));
    } catch (err) {
      results.replaceChildren(failure(err));
    }
  }
  const form = h("form", { class: "panel", "aria-label": "Device filters",
    onsubmit: (ev) => { ev.preventDefault(); page = 1; load(); } },
    tabs,
    h("div", { class: "filters" }, h("label", { for: "d-q" }, "Query (q)", query),
      h("label", { for: "d-name" }, "Name contains", name)),
    h("div", { class: "toolbar" }, h("button", { type: "submit" }, "Apply filters"),
      h("span", { class: "spacer" }), h("a", { href: "#/device" }, "Open a device by id")));
  main.replaceChildren(h("h1", {}, "Devices"), form,
    h("section", { class: "panel" }, summary, results, h("div", { class: "toolbar" }, pager)));
  await load();
}

function deviceTable(devices) {
  return h("table", {},
    h("thead", {}, h("tr", {}, h("th", {}, "Endpoint"), h("th", {}, "Status"),
      h("th", {}, "Network"), h("th", { class: "hide-sm" }, "Session"), h("th", {}, "Last event"))),
    h("tbody", {}, devices.map((d) => {
      const key = d.id ?? d.name;
      return h("tr", { class: "device" },
        h("td", {}, h("a", { href: `#/device/${encodeURIComponent(key)}` }, d.name || `#${d.id}`)),
        h("td", {}, statusBadge(d.status)),
        h("td", {}, d.location ? [d.location.operator?.name || "", d.location.country?.name ? ` · ${d.location.country.name}` : ""] : "—"),
        h("td", { class: "hide-sm" }, d.pdp_context?.apn || "—"),
        h("td", { class: "nowrap" }, time(d.last_seen)));
    })));
}

// -- a device's daily usage (GET /endpoint/{id}/stats/daily) -----------------------------
async function usagePanel(id, days = 30) {
  const day = (offset) => new Date(Date.now() - offset * 86400e3).toISOString().slice(0, 10);
  const panel = h("section", { class: "panel usage", "aria-labelledby": "usage-h" },
    h("h2", { id: "usage-h" }, `Usage per day, last ${days} days`));
  let rows;
  try {
    const params = new URLSearchParams({ start_date: day(days - 1), end_date: day(0) });
    rows = (await api(`/endpoint/${encodeURIComponent(id)}/stats/daily?${params}`)).body;
  } catch (err) {
    if (err.status !== 404) throw err;
    rows = [];
  }
  const sum = (pick) => rows.reduce((s, r) => s + pick(r), 0);
  const rx = sum((r) => r.data.volume_rx), tx = sum((r) => r.data.volume_tx);
  const mo = sum((r) => r.sms.volume_tx), mt = sum((r) => r.sms.volume_rx);
  if (!rows.some((r) => r.data.volume || r.sms.volume)) {
    panel.append(h("p", { class: "muted" }, "No usage recorded in this period."));
    return panel;
  }
  const summary = `Data ${(rx + tx).toFixed(3)} MB (received ${rx.toFixed(3)}, sent ` +
    `${tx.toFixed(3)}) · SMS ${mo} sent, ${mt} received`;
  const W = 720, H = 150, S = 50, pad = 4, bw = (W - pad) / rows.length - 2;
  const maxMb = Math.max(...rows.map((r) => r.data.volume_rx + r.data.volume_tx), 1e-6);
  const maxSms = Math.max(...rows.map((r) => r.sms.volume_tx + r.sms.volume_rx), 1);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H + S + 24}`, role: "img", "aria-label": summary });
  const bar = (x, y, height, fill, text) => {
    const rect = svg("rect", { x, y, width: Math.max(bw, 1), height, fill });
    const title = svg("title");
    title.textContent = text;
    rect.append(title);
    chart.append(rect);
  };
  rows.forEach((r, i) => {
    const x = pad + i * (bw + 2);
    const hr = (r.data.volume_rx / maxMb) * (H - 10), ht = (r.data.volume_tx / maxMb) * (H - 10);
    if (hr) bar(x, H - hr, hr, "#1d4ed8", `${r.date} · received ${r.data.volume_rx} MB (${r.data.source})`);
    if (ht) bar(x, H - hr - ht, ht, "#059669", `${r.date} · sent ${r.data.volume_tx} MB (${r.data.source})`);
    const hm = (r.sms.volume_tx / maxSms) * (S - 6), hn = (r.sms.volume_rx / maxSms) * (S - 6);
    if (hm) bar(x, H + 6 + S - hm, hm, "#d97706", `${r.date} · ${r.sms.volume_tx} SMS sent`);
    if (hn) bar(x, H + 6 + S - hm - hn, hn, "#7c3aed", `${r.date} · ${r.sms.volume_rx} SMS received`);
  });
  for (const [i, anchor] of [[0, "start"], [rows.length - 1, "end"]]) {
    const label = svg("text", { x: i ? W : 0, y: H + S + 22, "font-size": 11, fill: "#4b5563",
      "text-anchor": anchor });
    label.textContent = rows[i].date;
    chart.append(label);
  }
  const colours = [["#1d4ed8", "MB received"], ["#059669", "MB sent"],
    ["#d97706", "SMS sent"], ["#7c3aed", "SMS received"]];
  panel.append(h("p", { class: "usage-summary" }, summary), h("div", { class: "chart" }, chart,
    h("div", { class: "legend" }, colours.map(([c, l]) => h("span", {}, h("i", { style: `background:${c}` }), l)))));
  return panel;
}

// -- handlers ----------------------------------------------------------------------------
// Each type's settings and credentials (the API checks them; credentials are write-only).
// The brokers' TLS (mqtts://, tls://, amqps://): a private CA to verify the broker against, and a
// client certificate with its key (mTLS), each pasted as PEM.
const CA_CERT = ["ca_cert", "-----BEGIN CERTIFICATE----- (optional: a private CA)"];
const CLIENT_PEMS = ["client_cert", "client_key"];
const PEMS = new Set(["ca_cert", ...CLIENT_PEMS]);
const SINKS = {
  webhook: { url: "https://example.com/herald", settings: [], credentials: [] },
  mqtt: { url: "mqtt://broker:1883", settings: [["topic", "herald/{organisation_id}/{event_type}"], CA_CERT],
    credentials: ["username", "password", ...CLIENT_PEMS] },
  nats: { url: "nats://nats:4222", settings: [["subject", "herald.{organisation_id}.{event_type}"], CA_CERT],
    credentials: ["username", "password", "token", ...CLIENT_PEMS] },
  amqp: { url: "amqp://rabbit:5672/", settings: [["exchange", "herald"], ["routing_key", "{organisation_id}.{event_type}"], CA_CERT],
    credentials: ["username", "password", ...CLIENT_PEMS] },
  s3: { url: "https://s3.eu-west-1.amazonaws.com", settings: [["bucket", "my-bucket"], ["region", "eu-west-1"]],
    credentials: ["access_key_id", "secret_access_key"] },
};

async function viewHandlers(id) {
  const { body: handlers } = await api("/event_handler");
  const statuses = await Promise.all(handlers.map((x) => api(`/event_handler/${x.id}/status`).then((r) => r.body)));
  const table = h("table", {},
    h("thead", {}, h("tr", {}, h("th", {}, "Handler"), h("th", {}, "State"), h("th", {}, "Lag"),
      h("th", { class: "hide-sm" }, "Last error"), h("th", {}, ""))),
    h("tbody", {}, handlers.map((x, i) => {
      const s = statuses[i];
      return h("tr", {},
        h("td", {}, h("strong", {}, x.name), " ", h("span", { class: "badge" }, x.type),
          h("div", { class: "muted mono" }, x.url)),
        h("td", {}, h("span", { class: `badge state-${s.state}` }, s.state),
          s.consecutive_failures ? h("div", { class: "muted" }, `${s.consecutive_failures} failures`) : null),
        h("td", { class: "nowrap" }, `${num(s.lag_events)} events`, h("div", { class: "muted" }, `${s.lag_seconds} s`)),
        h("td", { class: "hide-sm" }, s.last_error || "—"),
        h("td", {}, h("a", { href: `#/handlers/${x.id}` }, "Deliveries"), " ",
          h("a", { href: `#/handlers/${x.id}/edit`, "aria-label": `Edit ${x.name}` }, "Edit")));
    })));
  main.replaceChildren(h("h1", {}, "Event handlers"),
    h("section", { class: "panel" }, handlers.length ? table : h("p", { class: "muted" },
      "No handlers yet: create one below.")));
  const handler = handlers.find((x) => String(x.id) === id);
  if (handler && location.hash.endsWith("/edit")) main.append(handlerForm(handler));
  else {
    if (handler) await showDeliveries(handler, statuses);
    main.append(handlerForm(null));
  }
}

// The create form (handler null) or the edit form of one handler, fields per type.
function handlerForm(handler) {
  const editing = Boolean(handler);
  const field = (name, label, input) => h("label", { for: `hf-${name}` }, label, input);
  const type = h("select", { id: "hf-type", disabled: editing },
    Object.keys(SINKS).map((t) => h("option", { value: t, selected: editing && handler.type === t }, t)));
  const name = h("input", { id: "hf-name", required: true, value: handler?.name ?? "" });
  const url = h("input", { id: "hf-url", required: true, class: "mono", value: handler?.url ?? "" });
  const format = h("select", { id: "hf-format" },
    ["native", "cloudevents", "ndjson"].map((f) => h("option", { value: f, selected: handler?.format === f }, f)));
  const filter = h("input", { id: "hf-filter", placeholder: "type:3|5,severity:warn", value: handler?.filter ?? "" });
  const org = h("input", { id: "hf-org", inputmode: "numeric", placeholder: "internal tokens only" });
  // batch bounds: events, wait, and record bytes (empty: count alone)
  const batch = Object.fromEntries([["max_events", 1], ["max_wait_ms", 0], ["max_bytes", ""]].map(([k, d]) =>
    [k, h("input", { id: `hf-${k}`, type: "number", min: 0, value: handler?.batch?.[k] ?? d })]));
  const specific = h("div", { class: "filters sink-fields" });
  const inputs = { settings: {}, credentials: {} };
  const draw = () => {
    const sink = SINKS[type.value];
    url.placeholder = sink.url;
    inputs.settings = {}; inputs.credentials = {};
    specific.replaceChildren(
      ...sink.settings.map(([key, hint]) => {
        const attrs = { id: `hf-${key}`, class: "mono", placeholder: hint };
        inputs.settings[key] = PEMS.has(key)
          ? h("textarea", { ...attrs, rows: 3 }, handler?.settings?.[key] ?? "")
          : h("input", { ...attrs, value: handler?.settings?.[key] ?? "" });
        return field(key, key.replace(/_/g, " "), inputs.settings[key]);
      }),
      ...sink.credentials.map((key) => {
        const attrs = { id: `hf-${key}`, autocomplete: "off",
          placeholder: editing && handler.credentials_set ? "unchanged (write-only)" : "" };
        inputs.credentials[key] = PEMS.has(key)  // a PEM is many lines; cleared once saved
          ? h("textarea", { ...attrs, class: "mono", rows: 3, spellcheck: "false" })
          : h("input", { ...attrs, type: "password" });
        return field(key, key.replace(/_/g, " "), inputs.credentials[key]);
      }));
  };
  type.addEventListener("change", draw);
  draw();
  const note = h("p", { role: "status", "aria-live": "polite", class: "muted" });
  const form = h("form", { class: "panel", "aria-labelledby": "hf", onsubmit: async (ev) => {
    ev.preventDefault();
    const settings = {}, credentials = {};
    for (const [k, input] of Object.entries(inputs.settings)) if (input.value.trim()) settings[k] = input.value.trim();
    for (const [k, input] of Object.entries(inputs.credentials)) if (input.value) credentials[k] = input.value;
    const body = { name: name.value.trim(), url: url.value.trim(), format: format.value, filter: filter.value.trim() };
    body.batch = { max_events: Number(batch.max_events.value), max_wait_ms: Number(batch.max_wait_ms.value) };
    if (batch.max_bytes.value) body.batch.max_bytes = Number(batch.max_bytes.value);
    if (type.value !== "webhook") body.settings = settings;
    if (Object.keys(credentials).length) body.credentials = credentials;
    if (!editing) body.type = type.value;
    if (!editing && org.value.trim()) body.organisation_id = Number(org.value.trim());
    try {
      const { body: saved } = editing
        ? await api(`/event_handler/${handler.id}`, { method: "PATCH", body: JSON.stringify(body) })
        : await api("/event_handler", { method: "POST", body: JSON.stringify(body) });
      for (const input of Object.values(inputs.credentials)) input.value = "";
      note.textContent = saved.secret
        ? `Saved handler ${saved.id}. Its signing secret, shown only now: ${saved.secret}`
        : `Saved handler ${saved.id}.`;
    } catch (err) { note.textContent = `Not saved: ${err.message}`; }
  } },
    h("h2", { id: "hf" }, editing ? `Edit handler · ${handler.name}` : "New handler"),
    h("div", { class: "filters" },
      field("type", "Type", type), field("name", "Name", name), field("url", "URL", url),
      field("format", "Format", format), field("filter", "Filter", filter),
      editing ? null : field("org", "Organisation id", org),
      ...Object.entries(batch).map(([k, input]) => field(k, `Batch ${k.replace(/_/g, " ")}`, input))),
    specific,
    h("div", { class: "toolbar" }, h("button", { type: "submit" }, editing ? "Save" : "Create handler"), note));
  return form;
}

async function showDeliveries(handler, statuses) {
  if (!handler) return;
  const { body: deliveries } = await api(`/event_handler/${handler.id}/delivery`);
  const note = h("p", { role: "status", "aria-live": "polite", class: "muted" });
  const replay = h("button", { type: "button", onclick: async () => {
    try {
      const from = new Date(Date.now() - 3600e3).toISOString();
      await api(`/event_handler/${handler.id}/replay`, { method: "POST", body: JSON.stringify({ from }) });
      note.textContent = "Replay of the last hour queued.";
    } catch (err) { note.textContent = `Replay refused: ${err.message}`; }
  } }, "Replay last hour");
  const test = h("button", { type: "button", onclick: async () => {
    note.textContent = "Sending a test event…";
    try {
      const { body: r } = await api(`/event_handler/${handler.id}/test`, { method: "POST" });
      note.textContent = `Test: ${r.outcome}${r.detail ? ` · ${r.detail}` : ""}${r.error ? ` · ${r.error}` : ""}`;
    } catch (err) { note.textContent = `Test refused: ${err.message}`; }
  } }, "Send test event");
  main.append(h("section", { class: "panel", "aria-labelledby": "dl" },
    h("h2", { id: "dl" }, `Delivery log · ${handler.name}`),
    h("div", { class: "toolbar" }, replay, test, note),
    deliveries.length ? h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Time"), h("th", {}, "Outcome"), h("th", {}, "HTTP"),
        h("th", { class: "hide-sm" }, "Events"), h("th", { class: "hide-sm" }, "Error"))),
      h("tbody", {}, deliveries.map((d) => h("tr", { class: "delivery" },
        h("td", { class: "nowrap" }, time(d.time)),
        h("td", {}, h("span", { class: `badge ${d.outcome === "success" ? "state-active" : "state-disabled"}` }, d.outcome)),
        h("td", {}, d.status ?? "—"),
        h("td", { class: "hide-sm" }, d.event_ids.length),
        h("td", { class: "hide-sm" }, d.error || "")))))
      : h("p", { class: "muted" }, "No delivery attempts yet.")));
}

// -- rejected records (the ingest quarantine) --------------------------------------------
async function viewRejected() {
  const { body: records, headers } = await api("/ingest/rejected?per_page=100");
  const total = Number(headers.get("X-Total-Count") || records.length);
  const note = h("p", { role: "status", "aria-live": "polite", class: "muted" });
  const retry = async (path, done) => {
    try {
      const { body } = await api(path, { method: "POST" });
      note.textContent = done(body);
      setTimeout(route, 1200);
    } catch (err) { note.textContent = `Retry refused: ${err.message}`; }
  };
  const reasons = (r) => r.errors.map((e) => `${e.field}: ${e.reason}`).join("; ");
  const open = (r) => {
    drawerReturn = document.activeElement;
    document.getElementById("drawer-title").textContent = `Rejected ${r.provider} record · ${time(r.received)}`;
    document.getElementById("drawer-body").replaceChildren(
      h("p", { class: "error" }, reasons(r)),
      h("div", { class: "tree", "aria-label": "Record JSON" }, tree(r.record, "record")));
    document.getElementById("drawer").hidden = false;
    document.getElementById("drawer-close").focus();
  };
  const rows = records.map((r) => h("tr", { class: "rejected" },
    h("td", { class: "nowrap" }, time(r.received)),
    h("td", {}, r.provider),
    h("td", {}, h("button", { type: "button", class: "ghost", onclick: () => open(r) }, reasons(r))),
    h("td", { class: "hide-sm" }, r.attempts),
    h("td", {}, h("button", { type: "button", class: "secondary",
      onclick: () => retry(`/ingest/rejected/${r.id}/retry`, (b) => `Record ${r.id}: ${b.status}.`) }, "Retry"))));
  const all = h("button", { type: "button", onclick: () => retry("/ingest/rejected/retry",
    (b) => `Retried ${b.retried}: ${b.stored} stored, ${b.duplicates} duplicates, ${b.quarantined} still rejected.`) },
    "Retry all");
  main.replaceChildren(h("h1", {}, "Rejected records"),
    h("section", { class: "panel" },
      h("p", { class: "muted" }, `${num(total)} provider records could not be used. `,
        "They are kept with why for the retention period; retry them after a catalogue or Herald update."),
      h("div", { class: "toolbar" }, records.length ? all : null, note),
      records.length ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Received"),
        h("th", {}, "Provider"), h("th", {}, "Why"), h("th", { class: "hide-sm" }, "Attempts"), h("th", {}, ""))),
      h("tbody", {}, rows)) : h("p", { class: "muted" }, "No rejected records.")));
}

// -- catalogue ---------------------------------------------------------------------------
async function viewCatalog() {
  const { body: types } = await api("/event/type");
  const search = h("input", { id: "cat-search", type: "search", placeholder: "id, name, group or moniker" });
  const tbody = h("tbody");
  const render = () => {
    const needle = search.value.trim().toLowerCase();
    tbody.replaceChildren(...types.filter((t) => !needle ||
      JSON.stringify([t.id, t.description, t.group, t.monikers]).toLowerCase().includes(needle))
      .map((t) => h("tr", {},
        h("td", { class: "mono" }, t.id),
        h("td", {}, h("strong", {}, t.description),
          t.explanation ? h("div", { class: "muted" }, t.explanation) : null,
          t.state_after ? h("div", { class: "muted" }, `After: ${t.state_after}`) : null),
        h("td", { class: "hide-sm" }, t.group || ""),
        h("td", {}, badge({ id: t.default_severity, description: SEVERITY[t.default_severity] })),
        h("td", { class: "hide-sm mono" }, t.monikers.join(", ")))));
  };
  search.addEventListener("input", render);
  render();
  main.replaceChildren(h("h1", {}, "Event catalogue"),
    h("section", { class: "panel" }, h("label", { for: "cat-search" }, "Search", search),
      h("p", { class: "muted" }, `${types.length} system types. Codes from 10000 are yours for custom events.`),
      h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Id"), h("th", {}, "Type"),
        h("th", { class: "hide-sm" }, "Group"), h("th", {}, "Severity"), h("th", { class: "hide-sm" }, "Monikers"))),
      tbody)));
}

// -- start -------------------------------------------------------------------------------
document.getElementById("signout").addEventListener("click", signOut);
document.getElementById("drawer-close").addEventListener("click", closeDrawer);
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") closeDrawer(); });
window.addEventListener("hashchange", route);
route();
