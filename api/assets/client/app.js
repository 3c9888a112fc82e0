// The cdcstar test client: the reference React test client's actions through the shop API, and a
// live view of the star schema in ClickHouse (GET /api/star/{table}) timing each action until it
// is visible there. Plain JavaScript, no build step, nothing downloaded.
"use strict";

const STAR_TABLES = ["customer_dim", "product_dim", "order_fact", "orderitem_fact"];
const STATUSES = ["pending", "paid", "shipped", "delivered", "cancelled"];
const STAR_ROWS = 10;
const STAR_REFRESH_MS = 1000;
const POLL_MS = 100;
const VISIBLE_TIMEOUT_MS = 60000;

const FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Frances", "Dennis", "Radia", "John"];
const LAST = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson", "Allen", "Ritchie", "Perlman", "Backus"];
const PLACES = [["UK", "London"], ["UK", "Manchester"], ["USA", "San Francisco"], ["USA", "Boston"], ["France", "Paris"],
  ["Germany", "Berlin"], ["Japan", "Tokyo"], ["Brazil", "Recife"], ["Canada", "Toronto"], ["India", "Pune"]];
const PRODUCTS = [["Wireless Mouse", "Electronics"], ["Mechanical Keyboard", "Electronics"], ["USB-C Cable", "Accessories"],
  ["Desk Lamp", "Home"], ["Notebook", "Stationery"], ["Fountain Pen", "Stationery"], ["Coffee Mug", "Kitchen"],
  ["Headphones", "Electronics"], ["Backpack", "Travel"], ["Water Bottle", "Travel"]];

// The forms creating a customer or a product (`#customer-form`, `#product-form`, before the order
// form): a text input a field (`#customer-email`, ...), "Random" filling them from `random`, and a
// submit creating the row from them, as the generate buttons (`#generate-customers`, ...) do.
const DIMENSION_FORMS = [
  { kind: "customer", fields: ["email", "name", "country", "city"], random: randomCustomer },
  { kind: "product", fields: ["name", "category", "price"], random: randomProduct },
];

const state = { customers: [], products: [], orders: [], starEnabled: null, actions: 0 };
const $ = (id) => document.getElementById(id);
const pick = (list) => list[Math.floor(Math.random() * list.length)];
const now = () => performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// --- the API ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    // As the reference client: the envelope's error.message, with the fields it names.
    const message = (body && body.error && body.error.message) || (body && body.message) || `HTTP ${status}`;
    super(message);
    this.status = status;
    this.code = body && body.error && body.error.code;
    this.details = (body && body.details) || [];
  }
}

async function api(method, path, body) {
  const options = { method, headers: { accept: "application/json" } };
  if (body !== undefined) {
    options.headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 204) return null;
  let json = null;
  try { json = await response.json(); } catch (_) { /* no JSON body */ }
  if (!response.ok) throw new ApiError(response.status, json);
  return json.data;
}

function showError(error) {
  $("error-status").textContent = error.status ? `${error.status}${error.code ? " " + error.code : ""}` : "";
  $("error-message").textContent = error.message;
  const details = $("error-details");
  details.replaceChildren(...(error.details || []).map((d) => el("li", { text: `${d.field}: ${d.message}` })));
  $("error").hidden = false;
}

function clearError() { $("error").hidden = true; }

// Runs an action: clears the last error, shows a new one.
async function act(fn) {
  clearError();
  try { await fn(); } catch (error) { showError(error); }
}

// --- timing until ClickHouse shows a change ----------------------------------------------------

async function star(table, params) {
  const query = new URLSearchParams(params || {}).toString();
  return api("GET", `/api/star/${table}${query ? "?" + query : ""}`);
}

// Records an action in the activity list and waits, for each target, until its star query
// satisfies its check. target: {label, table, params, check(rows) -> bool}.
async function track(description, apiMs, started, targets) {
  const id = ++state.actions;
  const spans = targets.map((t) => el("span", { class: "target", "data-table": t.table, "data-state": "waiting", text: `${t.label}: waiting` }));
  const item = el("li", { "data-action": id, "data-state": "waiting" },
    el("span", { class: "what", text: `${description} (API ${Math.round(apiMs)} ms) ` }), ...spans);
  $("activity").prepend(item);
  const results = await Promise.all(targets.map((t, i) => waitVisible(t, started, spans[i])));
  item.dataset.state = results.every((r) => r === "visible") ? "visible" : results.includes("off") ? "off" : "timeout";
  return item;
}

async function waitVisible(target, started, span) {
  if (state.starEnabled === false) {
    span.dataset.state = "off";
    span.textContent = `${target.label}: star view off`;
    return "off";
  }
  while (now() - started < VISIBLE_TIMEOUT_MS) {
    try {
      const page = await star(target.table, { limit: 100, ...target.params });
      if (target.check(page.rows)) {
        const ms = Math.round(now() - started);
        span.dataset.state = "visible";
        span.dataset.ms = ms;
        span.textContent = `${target.label}: ${ms} ms`;
        return "visible";
      }
    } catch (error) {
      if (notConfigured(error)) { state.starEnabled = false; break; }
    }
    await sleep(POLL_MS);
  }
  span.dataset.state = state.starEnabled === false ? "off" : "timeout";
  span.textContent = `${target.label}: ${state.starEnabled === false ? "star view off" : "not visible after 60 s"}`;
  return span.dataset.state;
}

const notConfigured = (error) => error.status === 404 && /not configured/.test(error.message);
const one = (check) => (rows) => rows.length === 1 && check(rows[0]);
const none = (rows) => rows.length === 0;

// --- actions ------------------------------------------------------------------------------------

function randomCustomer() {
  const [country, city] = pick(PLACES);
  const first = pick(FIRST);
  const last = pick(LAST);
  const tag = Date.now().toString(36) + Math.floor(Math.random() * 1e6).toString(36);
  return { email: `${first}.${last}.${tag}@example.com`.toLowerCase(), name: `${first} ${last}`, country, city };
}

function randomProduct() {
  const [name, category] = pick(PRODUCTS);
  return { name, category, price: Math.round((2 + Math.random() * 98) * 100) / 100 };
}

// Sends one API request, timed: its data, when it started and how long the API took.
async function timed(method, path, body) {
  const started = now();
  const data = await api(method, path, body);
  return { data, started, apiMs: now() - started };
}

// Creates a customer or a product (`kind`), tracked until its dimension row has its name.
async function createDimension(kind, body) {
  const { data: created, started, apiMs } = await timed("POST", `/api/${kind}s`, body);
  state[`${kind}s`].push(created);
  renderLists();
  return track(`${kind} ${created.id} ${created.name} created`, apiMs, started, [
    { label: `${kind}_dim`, table: `${kind}_dim`, params: { [`${kind}_id`]: created.id }, check: one((r) => r.name === created.name) },
  ]);
}

function orderLines() {
  return [...document.querySelectorAll("#order-lines .line")].map((line) => {
    const productId = Number(line.querySelector("select").value);
    const product = state.products.find((p) => p.id === productId);
    return { productId, quantity: Number(line.querySelector("input").value), price: product ? product.price : 0 };
  });
}

function orderTotal(lines) {
  return Math.round(lines.reduce((sum, l) => sum + l.quantity * l.price, 0) * 100) / 100;
}

async function createOrder() {
  const lines = orderLines();
  const body = { customerId: Number($("order-customer").value), status: $("order-status").value, total: orderTotal(lines), items: lines };
  const { data: created, started, apiMs } = await timed("POST", "/api/orders", body);
  state.orders.push(created);
  renderLists();
  const customer = state.customers.find((c) => c.id === created.customerId);
  return track(`order ${created.id} with ${created.items.length} items created`, apiMs, started, [
    { label: "order_fact", table: "order_fact", params: { order_id: created.id },
      check: one((r) => r.status === created.status && (!customer || r.customer_name === customer.name)) },
    { label: "orderitem_fact", table: "orderitem_fact", params: { order_id: created.id },
      check: (rows) => rows.length === created.items.length && rows.every((r) => r.product_name !== "") },
  ]);
}

async function changeStatus(orderId, status) {
  const { data: updated, started, apiMs } = await timed("PATCH", `/api/orders/${orderId}`, { status });
  state.orders = state.orders.map((o) => (o.id === orderId ? updated : o));
  renderLists();
  return track(`order ${orderId} status → ${status}`, apiMs, started, [
    { label: "order_fact", table: "order_fact", params: { order_id: orderId }, check: one((r) => r.status === status) },
    { label: "orderitem_fact", table: "orderitem_fact", params: { order_id: orderId },
      check: (rows) => rows.length === updated.items.length && rows.every((r) => r.order_status === status) },
  ]);
}

async function deleteOrder(orderId) {
  const { started, apiMs } = await timed("DELETE", `/api/orders/${orderId}`);
  state.orders = state.orders.filter((o) => o.id !== orderId);
  renderLists();
  return track(`order ${orderId} deleted`, apiMs, started, [
    { label: "order_fact", table: "order_fact", params: { order_id: orderId }, check: none },
    { label: "orderitem_fact", table: "orderitem_fact", params: { order_id: orderId }, check: none },
  ]);
}

// A rename reaches order_fact (customer_name); a move reaches orderitem_fact (customer_city).
async function updateCustomer(customerId, name, city) {
  const before = state.customers.find((c) => c.id === customerId);
  const { data: updated, started, apiMs } = await timed("PUT", `/api/customers/${customerId}`, { name, city });
  state.customers = state.customers.map((c) => (c.id === customerId ? updated : c));
  renderLists();
  const targets = [
    { label: "customer_dim", table: "customer_dim", params: { customer_id: customerId },
      check: one((r) => r.name === name && r.city === city) },
  ];
  const orders = state.orders.filter((o) => o.customerId === customerId);
  if (orders.length > 0 && (!before || before.name !== name)) {
    targets.push({ label: "order_fact (customer_name)", table: "order_fact", params: { customer_id: customerId },
      check: (rows) => rows.length > 0 && rows.every((r) => r.customer_name === name) });
  }
  if (orders.some((o) => o.items.length > 0) && (!before || before.city !== city)) {
    targets.push({ label: "orderitem_fact (customer_city)", table: "orderitem_fact", params: { customer_id: customerId },
      check: (rows) => rows.length > 0 && rows.every((r) => r.customer_city === city) });
  }
  return track(`customer ${customerId} → ${name}, ${city}`, apiMs, started, targets);
}

// --- rendering ----------------------------------------------------------------------------------

function options(select, items, label) {
  const value = select.value;
  select.replaceChildren(...items.map((item) => el("option", { value: item.id, text: label(item) })));
  if (items.some((item) => String(item.id) === value)) select.value = value;
}

function renderOrderLines() {
  const count = Number($("order-item-count").value);
  const container = $("order-lines");
  while (container.children.length < count) {
    const index = container.children.length;
    container.append(el("div", { class: "line" },
      el("select", { id: `order-line-${index}-product`, "aria-label": `product of item ${index + 1}`, onchange: renderTotal }),
      el("input", { id: `order-line-${index}-quantity`, type: "text", value: "1", "aria-label": `quantity of item ${index + 1}`, oninput: renderTotal })));
  }
  while (container.children.length > count) container.lastChild.remove();
  const products = [...state.products].reverse();
  container.querySelectorAll("select").forEach((select) => options(select, products, (p) => `${p.id} ${p.name} (${p.price})`));
  renderTotal();
}

function renderTotal() { $("order-total").textContent = orderTotal(orderLines()).toFixed(2); }

function renderLists() {
  const customers = [...state.customers].reverse();
  options($("order-customer"), customers, (c) => `${c.id} ${c.name} (${c.city})`);
  options($("rename-customer"), customers, (c) => `${c.id} ${c.name} (${c.city})`);
  renderOrderLines();
  const rows = [...state.orders].reverse().slice(0, 20).map((order) => {
    const customer = state.customers.find((c) => c.id === order.customerId);
    const status = el("select", { class: "status", "aria-label": `status of order ${order.id}` });
    status.replaceChildren(...STATUSES.map((s) => el("option", { value: s, text: s })));
    if (!STATUSES.includes(order.status)) status.append(el("option", { value: order.status, text: order.status }));
    status.value = order.status;
    return el("tr", { "data-order-id": order.id },
      el("td", { text: order.id }),
      el("td", { text: customer ? customer.name : order.customerId }),
      el("td", { text: order.items.length }),
      el("td", { text: Number(order.total).toFixed(2) }),
      el("td", {}, status),
      el("td", {},
        el("button", { type: "button", class: "save-status", onclick: () => act(() => changeStatus(order.id, status.value)), text: "Save" }),
        el("button", { type: "button", class: "delete danger", onclick: () => act(() => deleteOrder(order.id)), text: "Delete" })));
  });
  document.querySelector("#orders tbody").replaceChildren(...rows);
}

function dimensionForm({ kind, fields, random }) {
  const input = (field) => $(`${kind}-${field}`);
  const fill = () => {
    const row = random();
    for (const field of fields) input(field).value = row[field];
  };
  const submit = (event) => {
    event.preventDefault();
    act(() => createDimension(kind, Object.fromEntries(fields.map((field) => [field, input(field).value]))));
  };
  const label = (field) => `${field[0].toUpperCase()}${field.slice(1)} `;
  return el("form", { class: "card", id: `${kind}-form`, onsubmit: submit },
    el("h2", { text: `New ${kind}` }),
    ...fields.map((field) => el("label", {}, label(field), el("input", { id: `${kind}-${field}`, type: "text", required: "" }))),
    el("button", { type: "button", id: `${kind}-random`, onclick: fill, text: "Random" }), " ",
    el("button", { type: "submit", id: `${kind}-create`, text: `Create ${kind}` }));
}

function fillRename() {
  const customer = state.customers.find((c) => c.id === Number($("rename-customer").value));
  if (customer) { $("rename-name").value = customer.name; $("rename-city").value = customer.city; }
}

// --- the star view ------------------------------------------------------------------------------

const starSeen = {};

let refreshing = false;

async function refreshStar() {
  if (refreshing || $("star-pause").checked) return;
  refreshing = true;
  try { await refreshTables(); } finally { refreshing = false; }
}

async function refreshTables() {
  for (const table of STAR_TABLES) {
    const wrap = document.querySelector(`#star-tables [data-table="${table}"]`);
    try {
      const page = await star(table, { limit: STAR_ROWS });
      state.starEnabled = true;
      $("star-status").textContent = `database ${page.database}`;
      renderStarTable(wrap, page);
    } catch (error) {
      if (notConfigured(error)) {
        state.starEnabled = false;
        $("star-status").textContent = error.message;
        return;
      }
      wrap.querySelector(".message").textContent = error.message;
    }
  }
  $("star-refreshed").textContent = new Date().toLocaleTimeString();
}

function renderStarTable(wrap, page) {
  const key = page.key;
  const seen = starSeen[page.table] || (starSeen[page.table] = new Map());
  const columns = page.columns.map((c) => c.name);
  const head = el("tr", {}, ...columns.map((c) => el("th", { text: c })));
  const rows = page.rows.map((row) => {
    const signature = JSON.stringify(row);
    const fresh = seen.size > 0 && seen.get(row[key]) !== signature;
    seen.set(row[key], signature);
    return el("tr", { "data-key": row[key], class: fresh ? "fresh" : "" },
      ...columns.map((c) => el("td", { "data-column": c, text: row[c] === null ? "" : String(row[c]) })));
  });
  wrap.querySelector(".message").textContent = page.rows.length ? "" : "no rows";
  wrap.querySelector("table").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
}

// --- start --------------------------------------------------------------------------------------

async function load() {
  const [customers, products, orders] = await Promise.all([
    api("GET", "/api/customers?limit=1000"), api("GET", "/api/products?limit=1000"), api("GET", "/api/orders?limit=1000")]);
  Object.assign(state, { customers, products, orders });
  renderLists();
  fillRename();
}

function start() {
  document.querySelectorAll("select.statuses").forEach((select) =>
    select.replaceChildren(...STATUSES.map((s) => el("option", { value: s, text: s }))));
  $("star-tables").replaceChildren(...STAR_TABLES.map((table) =>
    el("div", { class: "table-wrap", "data-table": table, id: `star-${table}` },
      el("h3", { text: table }), el("div", { class: "message" }), el("table", {}))));
  $("order-form").before(...DIMENSION_FORMS.map(dimensionForm));
  $("error-close").addEventListener("click", clearError);
  for (const { kind, random } of DIMENSION_FORMS) {
    $(`generate-${kind}s`).addEventListener("click", () => act(() => Promise.all([1, 2, 3].map(() => createDimension(kind, random())))));
  }
  $("order-random").addEventListener("click", () => {
    if (state.customers.length) $("order-customer").value = pick(state.customers).id;
    $("order-item-count").value = String(1 + Math.floor(Math.random() * 3));
    renderOrderLines();
    document.querySelectorAll("#order-lines .line").forEach((line) => {
      if (state.products.length) line.querySelector("select").value = pick(state.products).id;
      line.querySelector("input").value = String(1 + Math.floor(Math.random() * 3));
    });
    renderTotal();
  });
  $("order-item-count").addEventListener("change", renderOrderLines);
  $("rename-customer").addEventListener("change", fillRename);
  $("order-form").addEventListener("submit", (event) => { event.preventDefault(); act(createOrder); });
  $("rename-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act(() => updateCustomer(Number($("rename-customer").value), $("rename-name").value, $("rename-city").value));
  });
  act(load);
  refreshStar();
  setInterval(refreshStar, STAR_REFRESH_MS);
}

start();
