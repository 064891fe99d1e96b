// mmdshot console: plain JavaScript over the /v1 API, no build step, no network beyond
// this service. The API key (optional) lives in sessionStorage and goes out as a Bearer token.
"use strict";

const root = new URL("..", window.location.href); // the service (the console is at /console/)
const keyInput = document.getElementById("api-key");
const state = { pool: null, cursor: null };
const SCORE_FIELDS = [ // per-example scores, shown when the service reports them
  ["similarity", "similarity"], ["affinity", "affinity"], ["contribution", "contribution"],
];

keyInput.value = sessionStorage.getItem("mmdshot-api-key") || "";
keyInput.addEventListener("change", () => {
  sessionStorage.setItem("mmdshot-api-key", keyInput.value.trim());
  loadPools();
});

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  const key = keyInput.value.trim();
  if (key) headers.Authorization = `Bearer ${key}`;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(new URL(path.replace(/^\//, ""), root), {
    ...options, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? `${body.error.message} (${response.status} ${body.error.type})`
      : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return body;
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child === null || child === undefined ? "" : child);
  return node;
}

function showError(error) {
  const box = document.getElementById("error");
  box.hidden = !error;
  box.textContent = error ? error.message : "";
}

function fmt(value, digits = 4) {
  return typeof value === "number" ? value.toFixed(digits) : "";
}

async function loadInfo() {
  try {
    const info = await api("/v1/info");
    document.getElementById("info").textContent =
      `v${info.version} · ${info.model || "no model"} (${info.dimension || "?"}-d) on ${info.device}`;
  } catch (error) {
    document.getElementById("info").textContent = `service: ${error.message}`;
  }
}

async function loadPools() {
  const list = document.getElementById("pools");
  list.replaceChildren();
  let pools = [];
  try {
    pools = (await api("/v1/pools")).pools;
  } catch (error) {
    list.append(el("li", { class: "error" }, error.message));
    return;
  }
  document.getElementById("pools-empty").hidden = pools.length > 0;
  for (const pool of pools) {
    const tau = pool.calibration ? ` · tau ${pool.calibration.tau}` : "";
    const item = el("li", { "data-pool": pool.name }, pool.name,
      el("small", {}, `${pool.size} examples · v${pool.version}${pool.labelled ? " · labelled" : ""}${tau}`));
    item.addEventListener("click", () => openPool(pool));
    if (state.pool && state.pool.name === pool.name) item.classList.add("active");
    list.append(item);
  }
  if (!state.pool && pools.length) openPool(pools[0]);
}

function openPool(pool) {
  state.pool = pool;
  state.cursor = null;
  for (const item of document.querySelectorAll("#pools li")) {
    item.classList.toggle("active", item.dataset.pool === pool.name);
  }
  document.getElementById("work").hidden = false;
  document.getElementById("result").hidden = true;
  document.getElementById("pool-title").textContent = pool.name;
  const calibrated = pool.calibration
    ? `calibrated tau ${pool.calibration.tau}${pool.calibration.stale ? " (stale)" : ""}` : "not calibrated";
  document.getElementById("pool-meta").textContent =
    `${pool.description || "no description"} · ${pool.size} examples · version ${pool.version} · ${pool.model} · ${calibrated}`;
  document.querySelector("#examples tbody").replaceChildren();
  loadExamples();
}

async function loadExamples() {
  const pool = state.pool;
  const query = new URLSearchParams({ limit: "25" });
  if (state.cursor) query.set("cursor", state.cursor);
  try {
    const page = await api(`/v1/pools/${encodeURIComponent(pool.name)}/examples?${query}`);
    const body = document.querySelector("#examples tbody");
    for (const example of page.examples) {
      body.append(el("tr", {}, el("td", {}, example.id), el("td", {}, example.input),
        el("td", {}, example.output), el("td", {}, example.label ? el("span", { class: "label" }, example.label) : "")));
    }
    state.cursor = page.next_cursor;
    document.getElementById("more").hidden = !page.next_cursor;
    document.getElementById("examples-count").textContent = `(${body.children.length} of ${pool.size})`;
  } catch (error) {
    showError(error);
  }
}

function baselineMmd(value) { // baselines hold {mmd, mmd2} per method, or (older services) mmd2
  if (value && typeof value === "object") return value.mmd;
  return Math.sqrt(Math.max(0, value));
}

function drawChart(selection) {
  const svg = document.getElementById("chart");
  const ns = "http://www.w3.org/2000/svg";
  const bars = [[selection.method === "mmd" ? "chosen (mmd)" : `chosen (${selection.method})`, selection.mmd, "#3558d6"]];
  for (const [name, value] of Object.entries(selection.baselines || {})) {
    bars.push([name, baselineMmd(value), "#9aa3b5"]);
  }
  const width = 320, left = 100, right = 56, row = 34, top = 8;
  const height = top + bars.length * row + 22;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.style.height = `${height}px`;
  svg.replaceChildren();
  const largest = Math.max(...bars.map((bar) => bar[1]), 1e-9);
  const add = (tag, attributes, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  bars.forEach(([name, value, color], index) => {
    const y = top + index * row;
    const length = ((width - left - right) * value) / largest;
    add("text", { x: left - 8, y: y + 17, "text-anchor": "end", "font-size": 12, fill: "#1d2330" }, name);
    add("rect", { x: left, y: y + 4, width: Math.max(length, 1), height: 20, rx: 3, fill: color, class: "bar" });
    add("text", { x: left + length + 6, y: y + 18, "font-size": 12, fill: "#6b7280" }, value.toFixed(3));
  });
  add("text", { x: left, y: height - 4, "font-size": 11, fill: "#6b7280" }, "MMD to the query (lower is closer)");
}

function showSelection(selection) {
  document.getElementById("result").hidden = false;
  drawChart(selection);
  const knn = selection.baselines && selection.baselines.knn !== undefined ? baselineMmd(selection.baselines.knn) : null;
  document.getElementById("summary").textContent =
    `k ${selection.k} · ${selection.kernel}, tau ${selection.tau} (${selection.tau_source}) · mmd ${fmt(selection.mmd)}` +
    (knn !== null ? ` vs knn ${fmt(knn)}` : "") + ` · bound ${fmt(selection.bound)} · ${fmt(selection.timings.total_ms, 1)} ms`;
  const scores = SCORE_FIELDS.filter(([field]) => selection.examples.some((example) => field in example));
  const head = document.querySelector("#chosen thead");
  head.replaceChildren(el("tr", {}, el("th", {}, "#"), el("th", {}, "input"), el("th", {}, "output"),
    el("th", {}, "label"), el("th", {}, "greedy step"), ...scores.map(([, title]) => el("th", {}, title))));
  const body = document.querySelector("#chosen tbody");
  body.replaceChildren();
  selection.examples.forEach((example, index) => {
    body.append(el("tr", { title: example.id }, el("td", {}, String(index + 1)), el("td", {}, example.input),
      el("td", {}, example.output), el("td", {}, example.label ? el("span", { class: "label" }, example.label) : ""),
      el("td", { class: "num" }, `${example.selection_rank + 1}.`),
      ...scores.map(([field]) => el("td", { class: "num" }, fmt(example[field])))));
  });
  document.getElementById("prompt").textContent = selection.prompt;
}

document.getElementById("select-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError(null);
  const body = {
    query: document.getElementById("query").value,
    k: Number(document.getElementById("k").value),
    method: document.getElementById("method").value,
  };
  const template = document.getElementById("template").value.replaceAll("\\n", "\n");
  if (template) body.template = template;
  try {
    showSelection(await api(`/v1/pools/${encodeURIComponent(state.pool.name)}/select`, { method: "POST", body }));
  } catch (error) {
    showError(error);
  }
});
document.getElementById("more").addEventListener("click", loadExamples);

loadInfo();
loadPools();
