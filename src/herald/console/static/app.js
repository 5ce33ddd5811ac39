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

// -- exact JSON --------------------------------------------------------------------------
// JavaScript numbers hold integers exactly only up to 2^53; Herald's event ids are 64-bit
// (917610037529018368 would read as 917610037529018400). Integer literals past 2^53 are read
// as a BigId, which keeps the digits as the server wrote them, and written back the same.
class BigId {
  constructor(digits) { this.digits = digits; }
  toString() { return this.digits; }
}
const NUMBER_OR_STRING = /"(?:[^"\\]|\\.)*"|(?<![\w.+-])-?\d{16,}(?![\w.])/g;
const MARK = "\u0000"; // never in an answer: Herald refuses NUL in what it stores
function parseJson(text) {
  const marked = text.replace(NUMBER_OR_STRING, (m) =>
    m[0] === '"' || Number.isSafeInteger(Number(m)) ? m : `"\\u0000${m}"`);
  return JSON.parse(marked, (_, v) =>
    typeof v === "string" && v[0] === MARK ? new BigId(v.slice(1)) : v);
}
function jsonText(value, indent) {
  return JSON.stringify(value, (_, v) => (v instanceof BigId ? MARK + v.digits : v), indent)
    .replace(/"\\u0000(-?\d+)"/g, "$1");
}

// -- requests: at most two at a time, 429 and 503 retried after their Retry-After ---------
// A tenant may run only HERALD_QUERIES_PER_ORGANISATION (default 4) queries at once: the
// console never sends more than MAX_IN_FLIGHT, and waits as told when the server is busy.
const MAX_IN_FLIGHT = 2;
const MAX_TRIES = 6;
let inFlight = 0;
const waiting = [];
let routeController = new AbortController(); // aborted when the route changes

function aborted() {
  return new DOMException("The page changed", "AbortError");
}

function acquire(signal) {
  if (signal.aborted) return Promise.reject(aborted());
  if (inFlight < MAX_IN_FLIGHT) {
    inFlight += 1;
    return Promise.resolve();
  }
  return new Promise((resolve, reject) => {
    const entry = { resolve };
    waiting.push(entry);
    signal.addEventListener("abort", () => {
      const i = waiting.indexOf(entry);
      if (i >= 0) { waiting.splice(i, 1); reject(aborted()); }
    }, { once: true });
  });
}

function release() {
  const next = waiting.shift();
  if (next) next.resolve(); // the slot passes on
  else inFlight -= 1;
}

function pause(seconds, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, seconds * 1000);
    signal.addEventListener("abort", () => { clearTimeout(timer); reject(aborted()); }, { once: true });
  });
}

function retryAfter(response) {
  const seconds = Number(response.headers.get("Retry-After"));
  return Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 30) : 1;
}

async function api(path, options = {}) {
  const signal = options.signal || routeController.signal;
  const method = (options.method || "GET").toUpperCase();
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}` };
  if (options.body) headers["Content-Type"] = "application/json";
  for (let attempt = 1; ; attempt += 1) {
    await acquire(signal);
    let response, text;
    try {
      response = await fetch(API + path, { ...options, headers, signal });
      text = response.status === 204 ? "" : await response.text();
    } finally {
      release();
    }
    if (response.status === 401 && !path.startsWith("/authenticate")) {
      signOut();
      throw new ApiError(401, { title: "Signed out" });
    }
    const busy = response.status === 429 || (response.status === 503 && method === "GET");
    if (busy && attempt < MAX_TRIES) {
      await pause(retryAfter(response), signal);
      continue;
    }
    let body = null;
    try { body = text ? parseJson(text) : null; } catch { body = {}; }
    if (!response.ok) throw new ApiError(response.status, body || {});
    return { body, headers: response.headers };
  }
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(ORG_KEY);
  location.hash = "#/login";
}

function failure(err) {
  return h("p", { class: "error", role: "alert" }, err.message);
}

const isAbort = (err) => err && err.name === "AbortError";

// A panel that fills itself when its request answers, or says inline why it could not.
function panel(title, load, attrs = {}) {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const section = h("section", { class: "panel", ...attrs }, title ? h("h2", {}, title) : null, body);
  load().then((content) => body.replaceChildren(content), (err) => {
    if (!isAbort(err)) body.replaceChildren(failure(err));
  });
  return section;
}

// -- who is signed in: a tenant (one organisation) or the platform (every organisation) ----
const ORG_KEY = "herald.organisation";
let organisations = []; // [{id, name}] the token may read, for names and the switcher

function claims() {
  try {
    const part = sessionStorage.getItem(TOKEN_KEY).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch {
    return {};
  }
}
const isPlatform = () => claims().org === null;
// The organisation the platform console shows ("" for all of them); a tenant has its own.
const chosenOrg = () => (isPlatform() ? sessionStorage.getItem(ORG_KEY) || "" : "");
const orgParams = () => (chosenOrg() ? { organisation: chosenOrg() } : {});
const showOrgColumn = () => isPlatform() && !chosenOrg();
const orgName = (id) => {
  const found = organisations.find((o) => String(o.id) === String(id));
  return found ? `${found.name} (${id})` : `#${id}`;
};
const scopeLabel = () => (!isPlatform() ? "" : chosenOrg() ? orgName(chosenOrg()) : "all organisations");
const plural = (n, one, many = `${one}s`) => `${num(n)} ${Number(n) === 1 ? one : many}`;
// replaceChildren with h's rules: arrays flattened, null, undefined and false left out.
const fill = (el, ...children) => el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
const tableOf = (...children) => h("div", { class: "table-wrap" }, h("table", {}, ...children));

async function loadOrganisations() {
  const picker = document.getElementById("org");
  const wrap = document.getElementById("org-switch");
  if (!isPlatform()) { wrap.hidden = true; return; }
  try {
    organisations = (await api("/organisation", { signal: new AbortController().signal })).body;
  } catch (err) {
    organisations = [];
  }
  picker.replaceChildren(h("option", { value: "" }, "All organisations"),
    ...organisations.map((o) => h("option", { value: String(o.id) }, `${o.name} (${o.id})`)));
  picker.value = chosenOrg();
  wrap.hidden = false;
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
  rules: viewRules,
  catalog: viewCatalog,
};
let generation = 0; // the current route's number: only it may render
let organisationsLoaded = null;

async function route() {
  stopLive();
  closeDrawer();
  routeController.abort(); // the last page's requests, queued or running, are dropped
  routeController = new AbortController();
  const mine = ++generation;
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const signedIn = Boolean(sessionStorage.getItem(TOKEN_KEY));
  if (!signedIn && name !== "login") return void (location.hash = "#/login");
  const view = routes[name] || (signedIn ? viewDashboard : viewLogin);
  document.querySelector(".top").hidden = view === viewLogin;
  for (const a of document.querySelectorAll(".top nav a")) {
    a.toggleAttribute("aria-current", a.getAttribute("href") === `#/${name}`);
    if (a.getAttribute("href") === `#/${name}`) a.setAttribute("aria-current", "page");
  }
  // Each route renders into its own element: a late answer of a page left behind changes
  // only that detached element, never the page shown.
  const root = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  main.replaceChildren(root);
  try {
    if (view !== viewLogin) {
      organisationsLoaded ||= loadOrganisations();
      await organisationsLoaded;
    }
    if (mine !== generation) return;
    await view(root, ...rest.map(decodeURIComponent));
  } catch (err) {
    if (mine === generation && !isAbort(err)) fill(root, failure(err));
  }
  if (mine === generation) main.focus();
}

// The route's own parameters written into the address, so that a filtered view can be
// bookmarked and shared; replaceState fires no hashchange, so the page is not drawn again.
function keepInAddress(name, params) {
  const text = params.toString();
  history.replaceState(null, "", `#/${name}${text ? `/${encodeURIComponent(text)}` : ""}`);
}

// -- sign in -----------------------------------------------------------------------------
async function viewLogin(root) {
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
          sessionStorage.removeItem(ORG_KEY);
          organisationsLoaded = null; // another token: its own organisations
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
  fill(root, 
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
// Six requests, at most two at a time (see api): each panel fills in when its own answers.
async function viewDashboard(root) {
  const range = { from: new Date(Date.now() - 24 * 3600e3).toISOString(), ...orgParams() };
  const q = (p) => "?" + new URLSearchParams({ ...range, ...p });
  const get = (path) => api(path).then((r) => r.body);
  const series = get("/event/stats" + q({ bucket: "hour", group: "severity" }));
  const states = get("/endpoint/status_counts?" + new URLSearchParams(orgParams()));
  const deviceLink = (r) => `#/device/${encodeURIComponent(String(r.key))}`;
  const typeName = (r) => (r.label ? `${r.key} · ${r.label}` : String(r.key));
  const cards = h("div", { class: "cards totals" }, h("div", { class: "card" }, h("p", { class: "muted" }, "Loading…")));
  const tiles = h("div", { class: "cards", "aria-label": "Devices by status" });
  const chart = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  series.then((s) => {
    const critical = s.rows.filter((r) => r.key === 2).reduce((a, r) => a + r.count, 0);
    cards.replaceChildren(
      h("div", { class: "card" }, h("div", { class: "n" }, num(s.total)),
        h("div", { class: "l" }, "events, last 24 h")),
      h("div", { class: "card" }, h("div", { class: "n" }, num(critical)),
        h("div", { class: "l" }, "critical")),
      h("div", { class: "card" }, h("div", { class: "n" }, `${num(s.volume_mb.toFixed(1))} MB`),
        h("div", { class: "l" }, "data in closed sessions")));
    chart.replaceChildren(stackedBars(s.rows, [0, 1, 2], SEVERITY_COLOUR, SEVERITY));
  }, (err) => {
    if (isAbort(err)) return;
    cards.replaceChildren(failure(err));
    chart.replaceChildren(failure(err));
  });
  states.then((states) => {
    const perStatus = Object.fromEntries(states.counts.map((c) => [c.status.description, c.count]));
    tiles.replaceChildren(...STATUS_ORDER.map(([name, id]) => h("a", { class: `card tile st-${id}`,
      href: `#/devices/${encodeURIComponent(`status=${name}`)}` },
      h("div", { class: "n" }, num(perStatus[name] || 0)),
      h("div", { class: "l" }, `${name.toLowerCase()} devices`))));
  }, (err) => { if (!isAbort(err)) tiles.replaceChildren(failure(err)); });
  const scope = scopeLabel();
  fill(root, 
    h("h1", {}, "Dashboard"),
    scope ? h("p", { class: "muted scope" }, `Showing ${scope}.`) : null,
    cards,
    tiles,
    h("section", { class: "panel", "aria-labelledby": "over-time" },
      h("h2", { id: "over-time" }, "Events over time by severity"), chart),
    h("div", { class: "grid" },
      panel("Top event types", () => get("/event/stats" + q({ group: "type", limit: 8 })).then((b) =>
        barList(b.rows.map((r) => ({ ...r, label: typeName(r) })), (r) => r.count, (r) => num(r.count),
          (r) => `#/events/${encodeURIComponent(`type=${r.key}`)}`))),
      panel("Top endpoints by events", () => get("/event/stats" + q({ group: "endpoint", limit: 8 }))
        .then((b) => barList(b.rows, (r) => r.count, (r) => num(r.count), deviceLink))),
      panel("Top endpoints by data volume", () =>
        get("/event/stats" + q({ group: "endpoint", order: "volume", limit: 8 })).then((b) =>
          barList(b.rows, (r) => r.volume_mb, (r) => `${r.volume_mb.toFixed(2)} MB`, deviceLink)))),
    panel("Recent alerts", () =>
      get("/event?" + new URLSearchParams({ alert: "true", per_page: 8, ...orgParams() })).then((alerts) =>
        alerts.length ? eventTable(alerts, { compact: true }) : h("p", { class: "muted" }, "No alerts."))),
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
  const org = showOrgColumn();
  const body = h("tbody", {}, events.map((e) => eventRow(e, compact, org)));
  return tableOf(
    h("thead", {}, h("tr", {}, h("th", {}, "Time"), h("th", {}, compact ? "Event" : "Type"),
      h("th", {}, "Severity"),
      org ? h("th", {}, "Organisation") : null,
      compact ? null : h("th", {}, "Endpoint"),
      compact ? null : h("th", {}, "Description"))),
    body);
}

function eventRow(e, compact = false, org = showOrgColumn()) {
  const open = () => openEvent(e);
  return h("tr", { class: "clickable", tabindex: 0, "data-id": String(e.id), onclick: open,
    onkeydown: (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); open(); } } },
    h("td", { class: "nowrap" }, time(e.timestamp)),
    h("td", {}, compact ? [e.description, h("div", { class: "muted" }, endpointName(e))]
      : `${e.event_type.id} · ${e.event_type.description}`),
    h("td", {}, badge(e.event_severity)),
    org ? h("td", { class: "org" }, e.organisation ? orgName(e.organisation.id) : "") : null,
    compact ? null : h("td", {}, e.endpoint
      ? h("a", { href: `#/device/${encodeURIComponent(String(e.endpoint.id))}`,
        onclick: (ev) => ev.stopPropagation() }, endpointName(e)) : ""),
    compact ? null : h("td", {}, e.description));
}

async function viewEvents(root, preset = "") {
  const params = new URLSearchParams(preset);
  let page = Math.max(1, Number(params.get("page")) || 1);
  const inputs = {};
  const filters = isPlatform() ? [...FILTERS, ["organisation", "Organisation", "id"]] : FILTERS;
  const fields = filters.map(([name, label, hint]) => {
    let input;
    if (name === "severity" || name === "source") {
      const options = name === "severity" ? SEVERITY : { 0: "Network", 1: "Policy Control", 2: "API" };
      input = h("select", { id: `f-${name}`, name },
        h("option", { value: "" }, "Any"),
        Object.entries(options).map(([v, l]) => h("option", { value: v }, l)));
    } else {
      input = h("input", { id: `f-${name}`, name, placeholder: hint || "" });
    }
    input.value = params.get(name) || (name === "organisation" ? chosenOrg() : "");
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
    if (page > 1) p.set("page", page);
    keepInAddress("events", p);
    p.set("page", page);
    p.set("per_page", 50);
    try {
      const { body, headers } = await api(`/event?${p}`);
      const pages = Number(headers.get("X-Total-Pages") || 1);
      status.textContent = `${plural(headers.get("X-Total-Count") || body.length, "event")} · page ${page} of ${pages}`;
      results.replaceChildren(body.length ? eventTable(body) : h("p", { class: "muted" }, "No events match."));
      pager.replaceChildren(
        h("button", { type: "button", class: "secondary", disabled: page <= 1,
          onclick: () => { page -= 1; load(); } }, "← Newer"),
        h("button", { type: "button", class: "secondary", disabled: page >= pages,
          onclick: () => { page += 1; load(); } }, "Older →"));
    } catch (err) {
      if (!isAbort(err)) results.replaceChildren(failure(err));
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
  fill(root, h("h1", {}, "Events"), form,
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
          else if (data) onEvent(parseJson(data));
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
  if (value !== null && typeof value === "object" && !(value instanceof BigId)) {
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    const summary = key === null ? "event" : `${key} ${Array.isArray(value) ? `[${entries.length}]` : "{…}"}`;
    return h("details", { open: true }, h("summary", {}, summary),
      entries.map(([k, v]) => tree(v, k)));
  }
  const cls = value === null ? "z" : typeof value === "string" ? "s" : "n"; // a BigId: a number
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
    onclick: () => navigator.clipboard?.writeText(jsonText(event, 2)) }, "Copy JSON");
  fill(document.getElementById("drawer-body"),
    h("p", {}, badge(event.event_severity), " ", h("span", { class: "mono event-id" }, `id ${event.id}`)),
    h("p", {}, event.description),
    event.organisation && isPlatform() ? h("p", {}, `Organisation ${orgName(event.organisation.id)}`) : null,
    event.endpoint ? h("p", {}, h("a", { href: `#/device/${encodeURIComponent(String(event.endpoint.id))}` },
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

async function viewDevice(root, id) {
  if (!id) {
    const input = h("input", { id: "device-id", inputmode: "numeric", required: true });
    fill(root, h("h1", {}, "Devices"), h("form", { class: "panel",
      onsubmit: (ev) => { ev.preventDefault(); location.hash = `#/device/${encodeURIComponent(input.value.trim())}`; } },
      h("label", { for: "device-id" }, "Endpoint id", input),
      h("div", { class: "toolbar" }, h("button", { type: "submit" }, "Open timeline"))),
      panel("Most active endpoints, last 7 days", async () => {
        const params = new URLSearchParams({ group: "endpoint", limit: 12, ...orgParams(),
          from: new Date(Date.now() - 7 * 86400e3).toISOString() });
        const top = await api(`/event/stats?${params}`);
        return barList(top.body.rows, (r) => r.count, (r) => num(r.count),
          (r) => `#/device/${encodeURIComponent(String(r.key))}`);
      }));
    return;
  }
  const state = deviceState(id); // the connectivity panel, asked for beside the timeline
  const usage = usagePanel(id).catch((err) => isAbort(err) ? null
    : h("section", { class: "panel" }, h("h2", {}, "Usage"), failure(err)));
  const params = new URLSearchParams({ per_page: 200, ...orgParams() });
  const list = (await api(`/endpoint/${encodeURIComponent(id)}/event?${params}`)).body;
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
  // An endpoint without events: nothing is known of it, so nothing is said to be "OK".
  const cards = list.length ? h("div", { class: "cards" },
    h("div", { class: "card" }, h("div", { class: "n" }, attach ? attach.detail?.country?.name || "Attached" : "—"),
      h("div", { class: "l" }, attach ? `last attach ${time(attach.timestamp)}` : "no attach seen")),
    h("div", { class: "card" }, h("div", { class: "n" }, `${opened} / ${closed.length}`),
      h("div", { class: "l" }, "sessions opened / closed")),
    h("div", { class: "card" }, h("div", { class: "n" }, `${volume.toFixed(2)} MB`),
      h("div", { class: "l" }, "data volume")),
    h("div", { class: "card" }, h("div", { class: "n" }, quota ? "Quota event" : "OK"),
      h("div", { class: "l" }, quota ? quota.description : "no quota events")))
    : h("p", { class: "notice", role: "status" },
      `Herald has no events for endpoint ${id} in the retention window.`);
  fill(root, 
    h("h1", {}, `Device ${name}`),
    cards,
    h("section", { class: "panel", "aria-labelledby": "tl" },
      h("h2", { id: "tl" }, list.length ? `Timeline (${plural(list.length, "event")})` : "Timeline"),
      items.length ? h("ol", { class: "timeline" }, items) : h("p", { class: "muted" }, "No events for this endpoint.")));
  const [statePanel, usageSection] = await Promise.all([state, usage]);
  root.querySelector("h1").after(statePanel);
  if (usageSection) root.querySelector("section[aria-labelledby=tl]").before(usageSection);
}

// The device's state as Herald keeps it: status, the network it is on, the open session.
async function deviceState(id) {
  const panel = h("section", { class: "panel", "aria-labelledby": "conn" },
    h("h2", { id: "conn" }, "Connectivity"));
  let device;
  try {
    device = (await api(`/endpoint?${new URLSearchParams({ endpoint: id, ...orgParams() })}`)).body[0];
  } catch (err) {
    if (isAbort(err)) throw err;
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
async function viewDevices(root, preset = "") {
  const params = new URLSearchParams(preset);
  let page = Math.max(1, Number(params.get("page")) || 1);
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
    const p = new URLSearchParams();
    if (status) p.set("status", status);
    if (query.value.trim()) p.set("q", query.value.trim());
    if (name.value.trim()) p.set("name", name.value.trim());
    if (page > 1) p.set("page", page);
    keepInAddress("devices", p);
    p.set("page", page);
    p.set("per_page", 50);
    const org = new URLSearchParams(orgParams());
    for (const [k, v] of org) p.set(k, v);
    try {
      const [{ body, headers }, counts] = await Promise.all([api(`/endpoint?${p}`),
        api(`/endpoint/status_counts?${org}`)]);
      const per = Object.fromEntries(counts.body.counts.map((c) => [c.status.description, c.count]));
      const tab = (value, label, count) => h("button", { type: "button", class: "secondary",
        "aria-pressed": String(status === value), onclick: () => { status = value; page = 1; load(); } },
        `${label} · ${num(count)}`);
      tabs.replaceChildren(tab("", "All", counts.body.total),
        ...STATUS_ORDER.map(([n]) => tab(n, n[0] + n.slice(1).toLowerCase(), per[n] || 0)));
      const pages = Number(headers.get("X-Total-Pages") || 1);
      summary.textContent = `${plural(headers.get("X-Total-Count") || body.length, "device")} · page ${page} of ${pages}`;
      results.replaceChildren(body.length ? deviceTable(body) : h("p", { class: "muted" }, "No devices match."));
      pager.replaceChildren(
        h("button", { type: "button", class: "secondary", disabled: page <= 1,
          onclick: () => { page -= 1; load(); } }, "← Previous"),
        h("button", { type: "button", class: "secondary", disabled: page >= pages,
          onclick: () => { page += 1; load(); } }, "Next →"));
    } catch (err) {
      if (!isAbort(err)) results.replaceChildren(failure(err));
    }
  }
  const form = h("form", { class: "panel", "aria-label": "Device filters",
    onsubmit: (ev) => { ev.preventDefault(); page = 1; load(); } },
    tabs,
    h("div", { class: "filters" }, h("label", { for: "d-q" }, "Query (q)", query),
      h("label", { for: "d-name" }, "Name contains", name)),
    h("div", { class: "toolbar" }, h("button", { type: "submit" }, "Apply filters"),
      h("span", { class: "spacer" }), h("a", { href: "#/device" }, "Open a device by id")));
  fill(root, h("h1", {}, "Devices"), form,
    h("section", { class: "panel" }, summary, results, h("div", { class: "toolbar" }, pager)));
  await load();
}

function deviceTable(devices) {
  const org = showOrgColumn();
  return tableOf(
    h("thead", {}, h("tr", {}, h("th", {}, "Endpoint"), org ? h("th", {}, "Organisation") : null,
      h("th", {}, "Status"), h("th", {}, "Network"), h("th", {}, "Session"), h("th", {}, "Last event"))),
    h("tbody", {}, devices.map((d) => {
      const key = String(d.id ?? d.name);
      return h("tr", { class: "device" },
        h("td", {}, h("a", { href: `#/device/${encodeURIComponent(key)}` }, d.name || `#${d.id}`)),
        org ? h("td", { class: "org" }, d.organisation ? orgName(d.organisation.id) : "") : null,
        h("td", {}, statusBadge(d.status)),
        h("td", {}, d.location ? [d.location.operator?.name || "", d.location.country?.name ? ` · ${d.location.country.name}` : ""] : "—"),
        h("td", {}, d.pdp_context?.apn || "—"),
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

let handlerNote = ""; // what the last action on a handler did, shown once it is redrawn

async function viewHandlers(root, id) {
  const org = chosenOrg();
  const { body: all } = await api("/event_handler");
  const handlers = all.filter((x) => !org || String(x.organisation.id) === org);
  const statuses = await Promise.all(handlers.map((x) =>
    api(`/event_handler/${x.id}/status`).then((r) => r.body, (err) => {
      if (isAbort(err)) throw err;
      return { state: "unknown", lag_events: 0, lag_seconds: 0, last_error: err.message };
    })));
  const note = h("p", { role: "status", "aria-live": "polite", class: "muted" });
  const orgColumn = showOrgColumn();
  note.textContent = handlerNote;
  handlerNote = "";
  const act = async (x, label, request, done) => {
    try {
      await request();
      handlerNote = done; // said again on the page drawn with the handler's new state
      route();
    } catch (err) {
      if (!isAbort(err)) note.textContent = `${label} refused: ${err.message}`;
    }
  };
  const toggle = (x) => h("button", { type: "button", class: "secondary",
    onclick: () => act(x, x.enabled ? "Disable" : "Enable", () => api(`/event_handler/${x.id}`,
      { method: "PATCH", body: jsonText({ enabled: !x.enabled }) }),
      `${x.name} ${x.enabled ? "disabled" : "enabled"}.`) }, x.enabled ? "Disable" : "Enable");
  const remove = (x) => h("button", { type: "button", class: "secondary danger",
    onclick: () => {
      if (!confirm(`Delete the handler "${x.name}" and its delivery log?`)) return;
      act(x, "Delete", () => api(`/event_handler/${x.id}`, { method: "DELETE" }), `${x.name} deleted.`);
    } }, "Delete");
  const table = tableOf(
    h("thead", {}, h("tr", {}, h("th", {}, "Handler"), orgColumn ? h("th", {}, "Organisation") : null,
      h("th", {}, "State"), h("th", {}, "Lag"), h("th", {}, "Last error"), h("th", {}, ""))),
    h("tbody", {}, handlers.map((x, i) => {
      const s = statuses[i];
      return h("tr", { class: "handler", "data-id": String(x.id) },
        h("td", {}, h("strong", {}, x.name), " ", h("span", { class: "badge" }, x.type),
          h("div", { class: "muted mono" }, x.url)),
        orgColumn ? h("td", { class: "org" }, orgName(x.organisation.id)) : null,
        h("td", {}, h("span", { class: `badge state-${s.state}` }, s.state),
          s.consecutive_failures ? h("div", { class: "muted" }, plural(s.consecutive_failures, "failure")) : null,
          !x.enabled && x.disabled_reason ? h("div", { class: "muted" }, x.disabled_reason) : null),
        h("td", { class: "nowrap" }, plural(s.lag_events, "event"), h("div", { class: "muted" }, `${s.lag_seconds} s`)),
        h("td", {}, s.last_error || "—"),
        h("td", { class: "actions" }, h("a", { href: `#/handlers/${x.id}` }, "Deliveries"), " ",
          h("a", { href: `#/handlers/${x.id}/edit`, "aria-label": `Edit ${x.name}` }, "Edit"), " ",
          toggle(x), " ", remove(x)));
    })));
  const scope = scopeLabel();
  fill(root, h("h1", {}, "Event handlers"),
    scope ? h("p", { class: "muted scope" }, `Showing ${scope}.`) : null,
    h("section", { class: "panel" }, note, handlers.length ? table : h("p", { class: "muted" },
      "No handlers yet: create one below.")));
  const handler = handlers.find((x) => String(x.id) === id);
  if (handler && location.hash.endsWith("/edit")) root.append(handlerForm(handler));
  else {
    if (handler) await showDeliveries(root, handler);
    root.append(handlerForm(null));
  }
}

// Form labels of the sinks' settings and credentials (their API names are snake_case).
const FIELD_LABELS = {
  topic: "Topic", subject: "Subject", exchange: "Exchange", routing_key: "Routing key",
  bucket: "Bucket", region: "Region", ca_cert: "CA certificate (PEM)",
  username: "Username", password: "Password", token: "Token",
  client_cert: "Client certificate (PEM)", client_key: "Client key (PEM)",
  access_key_id: "Access key id", secret_access_key: "Secret access key",
  max_events: "Batch: max events", max_wait_ms: "Batch: max wait (ms)", max_bytes: "Batch: max bytes",
};
const fieldLabel = (key) => FIELD_LABELS[key] || key[0].toUpperCase() + key.slice(1).replace(/_/g, " ");

// The create form (handler null) or the edit form of one handler, fields per type.
function handlerForm(handler) {
  const editing = Boolean(handler);
  const field = (name, label, input) => h("label", { for: `hf-${name}` }, label, input);
  const type = h("select", { id: "hf-type", disabled: editing },
    Object.keys(SINKS).map((t) => h("option", { value: t, selected: editing && handler.type === t }, t)));
  const name = h("input", { id: "hf-name", required: true, value: handler?.name ?? "" });
  const url = h("input", { id: "hf-url", required: true, class: "mono", value: handler?.url ?? "" });
  const format = h("select", { id: "hf-format" },
    ["native", "cloudevents", "ndjson", "stacuity"].map((f) => h("option", { value: f, selected: handler?.format === f }, f)));
  const filter = h("input", { id: "hf-filter", placeholder: "type:3|5,severity:warn", value: handler?.filter ?? "" });
  const org = h("input", { id: "hf-org", inputmode: "numeric", placeholder: "id", value: chosenOrg() });
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
        return field(key, fieldLabel(key), inputs.settings[key]);
      }),
      ...sink.credentials.map((key) => {
        const attrs = { id: `hf-${key}`, autocomplete: "off",
          placeholder: editing && handler.credentials_set ? "unchanged (write-only)" : "" };
        inputs.credentials[key] = PEMS.has(key)  // a PEM is many lines; cleared once saved
          ? h("textarea", { ...attrs, class: "mono", rows: 3, spellcheck: "false" })
          : h("input", { ...attrs, type: "password" });
        return field(key, fieldLabel(key), inputs.credentials[key]);
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
        ? await api(`/event_handler/${handler.id}`, { method: "PATCH", body: jsonText(body) })
        : await api("/event_handler", { method: "POST", body: jsonText(body) });
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
      editing || !isPlatform() ? null : field("org", "Organisation id", org),
      ...Object.entries(batch).map(([k, input]) => field(k, fieldLabel(k), input))),
    specific,
    h("div", { class: "toolbar" }, h("button", { type: "submit" }, editing ? "Save" : "Create handler"), note));
  return form;
}

// The API's delivery outcomes (herald.handlers.types.Delivery): delivered, retry, rejected, disabled, skipped.
const OUTCOME_CLASS = { delivered: "state-active", retry: "state-retrying", skipped: "state-retrying" };

async function showDeliveries(root, handler) {
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
  root.append(h("section", { class: "panel", "aria-labelledby": "dl" },
    h("h2", { id: "dl" }, `Delivery log · ${handler.name}`),
    h("div", { class: "toolbar" }, replay, test, note),
    deliveries.length ? tableOf(
      h("thead", {}, h("tr", {}, h("th", {}, "Time"), h("th", {}, "Outcome"), h("th", {}, "HTTP"),
        h("th", {}, "Events"), h("th", {}, "Error"))),
      h("tbody", {}, deliveries.map((d) => h("tr", { class: "delivery" },
        h("td", { class: "nowrap" }, time(d.time)),
        h("td", {}, h("span", { class: `badge ${OUTCOME_CLASS[d.outcome] || "state-disabled"}` }, d.outcome)),
        h("td", {}, d.status ?? "—"),
        h("td", {}, d.event_ids.length),
        h("td", {}, d.error || "")))))
      : h("p", { class: "muted" }, "No delivery attempts yet.")));
}

// -- rejected records (the ingest quarantine) --------------------------------------------
async function viewRejected(root) {
  const params = new URLSearchParams({ per_page: 100, ...orgParams() });
  const { body: records, headers } = await api(`/ingest/rejected?${params}`);
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
      r.truncated
        // larger than HERALD_QUARANTINE_RECORD_BYTES: only its first bytes were kept
        ? h("div", {}, h("p", { class: "muted" },
          `Too large to keep whole (${r.size} bytes, sha256 ${r.sha256}): only its first bytes are kept, and it cannot be retried.`),
        h("pre", { class: "tree", "aria-label": "Record's first bytes" }, r.record_prefix))
        : h("div", { class: "tree", "aria-label": "Record JSON" }, tree(r.record, "record")));
    document.getElementById("drawer").hidden = false;
    document.getElementById("drawer-close").focus();
  };
  const rows = records.map((r) => h("tr", { class: "rejected" },
    h("td", { class: "nowrap" }, time(r.received)),
    h("td", {}, r.provider),
    h("td", {}, h("button", { type: "button", class: "ghost", onclick: () => open(r) }, reasons(r))),
    h("td", {}, r.attempts),
    h("td", {}, h("button", { type: "button", class: "secondary",
      onclick: () => retry(`/ingest/rejected/${r.id}/retry`, (b) => `Record ${r.id}: ${b.status}.`) }, "Retry"))));
  const all = h("button", { type: "button", onclick: () => retry("/ingest/rejected/retry",
    (b) => `Retried ${b.retried}: ${b.stored} stored, ${b.duplicates} duplicates, ${b.quarantined} still rejected.`) },
    "Retry all");
  const scope = scopeLabel();
  const what = total ? [h("p", { class: "muted" },
    `${plural(total, "provider record")} could not be used. `,
    "They are kept with why for the retention period; retry them after a catalogue or Herald update."),
  h("div", { class: "toolbar" }, all, note),
  tableOf(h("thead", {}, h("tr", {}, h("th", {}, "Received"), h("th", {}, "Provider"), h("th", {}, "Why"),
    h("th", {}, "Attempts"), h("th", {}, ""))), h("tbody", {}, rows))]
    : [h("p", { class: "muted" }, "No rejected records: every provider record was used."), note];
  fill(root, h("h1", {}, "Rejected records"),
    scope ? h("p", { class: "muted scope" }, `Showing ${scope}.`) : null,
    h("section", { class: "panel" }, ...what));
}

// -- rules -------------------------------------------------------------------------------
const RULE_KINDS = {
  count: [["count", "Count", "5"], ["window_seconds", "Window (s)", "600"]],
  absence: [["window_seconds", "Window (s)", "21600"]],
  state: [["statuses", "Statuses", "OFFLINE|BLOCKED"], ["window_seconds", "For (s)", "1800"]],
  threshold: [["megabytes", "Megabytes", "500"], ["period", "Period", "day or month"]],
};

function ruleCondition(c) {
  if (c.kind === "count") return `${c.count} in ${c.window_seconds} s`;
  if (c.kind === "absence") return `none for ${c.window_seconds} s`;
  if (c.kind === "state") return `${c.statuses.join("|")} for ${c.window_seconds} s`;
  return `${c.megabytes} MB a ${c.period}`;
}

const age = (seconds) => (seconds < 120 ? `${seconds} s`
  : seconds < 7200 ? `${Math.round(seconds / 60)} min` : `${Math.round(seconds / 3600)} h`);

async function viewRules(root) {
  const [{ body: rules }, { body: alerts }] = await Promise.all([api("/rule"), api("/rule/alert")]);
  const org = showOrgColumn();
  const ruleRows = rules.map((r) => h("tr", { class: "rule" },
    org ? h("td", {}, orgName(r.organisation_id)) : null,
    h("td", {}, h("strong", {}, r.name)),
    h("td", { class: "mono" }, r.q || "all events"),
    h("td", {}, r.group),
    h("td", {}, `${r.condition.kind}: ${ruleCondition(r.condition)}`),
    h("td", {}, r.enabled ? (r.alerts ? h("span", { class: "badge sev-2" }, `${r.alerts} firing`) : "quiet") : "disabled",
      r.group_limit_reached ? h("span", { class: "badge sev-1", title: "new groups are not evaluated until the rule changes" }, ` ${r.groups} groups: the most`) : null,
      r.groups_refused ? h("span", { class: "badge sev-1 refused", title: `groups refused at the limit since ${r.refused_since}` }, ` ${r.groups_refused} refused since ${time(r.refused_since)}`) : null)));
  const alertRows = alerts.map((a) => h("tr", { class: "alert-row" },
    org ? h("td", {}, orgName(a.organisation_id)) : null,
    h("td", {}, a.rule.name),
    h("td", {}, `${a.group.by} ${a.group.key}`),
    h("td", { class: "nowrap" }, time(a.fired)),
    h("td", {}, age(a.age_seconds))));

  // the preview: a rule run over the past, nothing written
  const field = (id, label, attrs = {}) => {
    const input = h("input", { id, ...attrs });
    return [input, h("label", { for: id }, label, input)];
  };
  const [q, qLabel] = field("r-q", "Query (q)", { placeholder: "type:7" });
  const group = h("select", { id: "r-group" }, ["endpoint", "sim", "user", "target", "organisation"]
    .map((g) => h("option", { value: g }, g)));
  const kind = h("select", { id: "r-kind" }, Object.keys(RULE_KINDS).map((k) => h("option", { value: k }, k)));
  const params = h("div", { class: "filters" });
  const inputs = {};
  const drawParams = () => fill(params, RULE_KINDS[kind.value].map(([name, label, hint]) => {
    const [input, wrapped] = field(`r-${name}`, label, { placeholder: hint });
    inputs[name] = input;
    return wrapped;
  }));
  kind.addEventListener("change", drawParams);
  drawParams();
  const [hold, holdLabel] = field("r-hold", "Hold-down (s)", { placeholder: "0" });
  const [days, daysLabel] = field("r-days", "Over the last days", { value: "7" });
  const [orgInput, orgLabel] = field("r-org", "Organisation", { value: chosenOrg() });
  const result = h("div", { role: "status", "aria-live": "polite" });
  const condition = () => {
    const c = { kind: kind.value };
    for (const [name, input] of Object.entries(inputs)) {
      const value = input.value.trim();
      if (!value) continue;
      if (name === "statuses") c.statuses = value.toUpperCase().split(/[|, ]+/).filter(Boolean);
      else if (name === "period") c.period = value;
      else c[name] = Number(value);
    }
    return c;
  };
  const preview = async (ev) => {
    ev.preventDefault();
    const body = { q: q.value.trim(), group: group.value, condition: condition(),
      hold_down_seconds: Number(hold.value) || 0,
      from: new Date(Date.now() - (Number(days.value) || 7) * 86400000).toISOString() };
    if (isPlatform()) body.organisation_id = Number(orgInput.value);
    fill(result, h("p", { class: "muted" }, "Running over the stored events…"));
    try {
      const { body: found } = await api("/rule/preview", { method: "POST", body: jsonText(body) });
      fill(result, h("p", {}, h("strong", {}, `Would have fired ${plural(found.fired, "time")}`),
        ` over ${plural(found.events, "matching event")}${found.complete ? "" : " (the first 200,000 only)"}.`),
      found.groups.length ? tableOf(h("thead", {}, h("tr", {}, h("th", {}, "Group"), h("th", {}, "Firings"))),
        h("tbody", {}, found.groups.map((g) => h("tr", { class: "preview-group" },
          h("td", {}, `${group.value} ${g.key}`), h("td", {}, g.fired))))) : null);
    } catch (err) { fill(result, failure(err)); }
  };
  const form = h("form", { onsubmit: preview, "aria-label": "Preview a rule" },
    h("div", { class: "filters" }, qLabel, h("label", { for: "r-group" }, "Group", group),
      h("label", { for: "r-kind" }, "Condition", kind), holdLabel, daysLabel, isPlatform() ? orgLabel : null),
    params, h("button", { type: "submit" }, "Preview"), result);

  const head = (...names) => h("thead", {}, h("tr", {}, org ? h("th", {}, "Organisation") : null,
    ...names.map((n) => h("th", {}, n))));
  const scope = scopeLabel();
  fill(root, h("h1", {}, "Rules"),
    scope ? h("p", { class: "muted scope" }, `Showing ${scope}.`) : null,
    h("section", { class: "panel" }, h("h2", {}, "Alerts firing now"),
      alerts.length ? tableOf(head("Rule", "Group", "Fired", "Age"), h("tbody", {}, alertRows))
        : h("p", { class: "muted" }, "No alert is firing.")),
    h("section", { class: "panel" }, h("h2", {}, "Rules"),
      rules.length ? tableOf(head("Name", "Query", "Group", "Condition", "State"), h("tbody", {}, ruleRows))
        : h("p", { class: "muted" }, "No rules yet: create them with POST /api/v1/rule or herald rule create.")),
    h("section", { class: "panel" }, h("h2", {}, "Preview a rule"),
      h("p", { class: "muted" }, "Run a rule over the stored events of the last days: how many times, and for which groups, it would have fired. Nothing is written."),
      form));
}

// -- catalogue ---------------------------------------------------------------------------
async function viewCatalog(root) {
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
        h("td", {}, t.group || ""),
        h("td", {}, badge({ id: t.default_severity, description: SEVERITY[t.default_severity] })),
        h("td", { class: "mono" }, t.monikers.join(", ")))));
  };
  search.addEventListener("input", render);
  render();
  fill(root, h("h1", {}, "Event catalogue"),
    h("section", { class: "panel" }, h("label", { for: "cat-search" }, "Search", search),
      h("p", { class: "muted" }, `${types.length} system types. Codes from 10000 are yours for custom events.`),
      tableOf(h("thead", {}, h("tr", {}, h("th", {}, "Id"), h("th", {}, "Type"),
        h("th", {}, "Group"), h("th", {}, "Severity"), h("th", {}, "Monikers"))),
      tbody)));
}

// -- start -------------------------------------------------------------------------------
document.getElementById("signout").addEventListener("click", signOut);
document.getElementById("org").addEventListener("change", (ev) => {
  if (ev.target.value) sessionStorage.setItem(ORG_KEY, ev.target.value);
  else sessionStorage.removeItem(ORG_KEY);
  // the organisation filter of the address belongs to the last choice: start the view afresh
  const [name] = location.hash.replace(/^#\/?/, "").split("/");
  history.replaceState(null, "", `#/${name || "dashboard"}`);
  route();
});
document.getElementById("drawer-close").addEventListener("click", closeDrawer);
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") closeDrawer(); });
window.addEventListener("hashchange", route);
route();
