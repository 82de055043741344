// The storefront: home ("for you"), search with filters, product pages, cart. Every shopper action is
// posted to /v1/events before the next recommendation request, so the next slate reflects it.
import {api, hasRoute, money, newId, postEvents} from "./api.js";
import {announce, h, mount} from "./dom.js";

const STATE_KEY = "shopkeep.shopper";
const SOURCE_WORDS = {
  affinity: "matches what you looked at this session",
  content: "similar title, brand or attributes",
  covisit: "often viewed or bought together",
  sequential: "what shoppers viewed next",
  popular: "popular right now",
  trending: "trending",
};
const ATTRIBUTE_FILTERS = 5;

const main = document.getElementById("main");
let state = load();
let personaList = [];
let disclosures = {};
const chatNodes = []; // the concierge transcript, kept across page changes

function load() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STATE_KEY));
    if (saved && saved.anon) return saved;
  } catch (_) { /* a broken saved state starts a fresh shopper */ }
  return fresh(null, "anon");
}

function fresh(persona, prefix) {
  const anon = newId(prefix);
  return {anon, user: `u-${anon}`, session: newId("s"), persona, cart: []};
}

function save() {
  sessionStorage.setItem(STATE_KEY, JSON.stringify(state));
  document.getElementById("cart-count").textContent = String(state.cart.length);
  document.getElementById("shopper-id").textContent = state.anon;
  document.getElementById("persona").value = state.persona || "";
}

function who() {
  return {anonymous_id: state.anon, session_id: state.session};
}

/** Request ids: the anonymous shopper plus the user id its profile (personalization switch) is kept under. */
function asker() {
  return {...who(), user_id: state.user || `u-${state.anon}`};
}

// -- product cards --------------------------------------------------------------------------------
async function details(ids, filters = {}) {
  if (!ids.length) return new Map();
  const data = await api("/v1/web/catalog", {params: {ids: ids.join(","), k: 100, ...filters,
    user_id: asker().user_id, anonymous_id: state.anon}});
  return new Map(data.items.map((item) => [item.item_id, item]));
}

function why(rec, rules) {
  // plain-language reasons from the server (/v1/transparency), then the technical trace
  const plain = (rec.why || []).map((text) => h("li", {}, text));
  const lines = Object.entries(rec.sourceDetail || {}).map(([name, d]) =>
    h("li", {}, h("strong", {}, name), `: ${SOURCE_WORDS[name] || "retrieval source"} (rank ${d.rank + 1})`));
  if (!lines.length) {
    lines.push(...(rec.sources || []).map((name) => h("li", {}, h("strong", {}, name), `: ${SOURCE_WORDS[name] || ""}`)));
  }
  // "source:x" reasons repeat the sources listed above
  for (const reason of (rec.reasons || []).filter((r) => !r.startsWith("source:"))) {
    lines.push(h("li", {class: "rule"}, `rule: ${reason}`));
  }
  for (const r of rules) lines.push(h("li", {class: "rule"}, `rule ${r.rule_id} (${r.kind}): ${r.effect}`));
  return h("details", {class: "why"}, h("summary", {}, "Why am I seeing this?"),
    plain.length ? h("ul", {class: "plain"}, plain) : null,
    lines.length ? h("details", {class: "trace"}, h("summary", {}, "Technical details"), h("ul", {}, lines)) : null);
}

function card(item, rec = null, rules = [], hit = null) {
  const link = h("a", {href: `#/item/${encodeURIComponent(item.item_id)}`, class: "title"}, item.title);
  if (rec) {
    link.addEventListener("click", async (event) => {
      event.preventDefault();
      await postEvents([{type: "click", item_id: item.item_id, trace_id: rec.trace_id, position: rec.position,
        ...who()}]).catch(() => null);
      location.hash = link.getAttribute("href");
    });
  }
  const inCart = state.cart.includes(item.item_id);
  return h("li", {class: "card", "data-item-id": item.item_id, "data-brand": item.brand || "",
                  "data-category": (item.category || [])[0] || ""},
    link,
    h("p", {class: "meta"}, [item.brand, (item.category || []).join(" › ")].filter(Boolean).join(" · ")),
    h("p", {class: "price"}, money(item.price), item.in_stock ? "" : h("span", {class: "oos"}, " out of stock")),
    item.rating ? h("p", {class: "rating"}, `★ ${item.rating.toFixed(1)} (${item.rating_count})`) : null,
    h("button", {type: "button", class: "add", disabled: inCart || !item.in_stock,
                 "aria-label": `Add ${item.title} to cart`, onclick: (e) => addToCart(item, e.currentTarget)},
      inCart ? "In cart" : "Add to cart"),
    rec ? why(rec, rules) : null,
    hit ? why({why: hit.why, reasons: hit.reasons, sourceDetail: hit.sources}, []) : null);
}

function grid(label, cards, extra = {}) {
  return h("ul", {class: "grid", "aria-label": label, ...extra}, cards);
}

// -- recommendations ------------------------------------------------------------------------------
async function fetchSlate(surface, params = {}, k = 8) {
  const data = await api("/v1/transparency/recommendations",
    {params: {surface, k, explain: true, ...asker(), ...params}});
  const explain = data.explain || {items: [], rules: []};
  const perItem = new Map(explain.items.map((it) => [it.item_id, it.sources]));
  const recs = data.items.map((it) => ({...it, trace_id: data.trace_id, sourceDetail: perItem.get(it.item_id)}));
  return {surface, trace_id: data.trace_id, recs, explain, personalized: data.personalized,
          items: await details(recs.map((r) => r.item_id))};
}

function slateSection(got, title, only = null) {
  const shown = (only ? got.recs.filter(only) : got.recs).filter((r) => got.items.has(r.item_id));
  postEvents(shown.map((r) => ({type: "impression", item_id: r.item_id, trace_id: r.trace_id,
    position: r.position, ...who()}))).catch(() => null);
  const cards = shown.map((r) =>
    card(got.items.get(r.item_id), r, (got.explain.rules || []).filter((rule) => rule.item_id === r.item_id)));
  const id = `recs-${got.surface}-${title.replace(/\W+/g, "-").toLowerCase()}`;
  return h("section", {class: "slate", "aria-labelledby": id, "data-surface": got.surface,
                       "data-trace-id": got.trace_id},
    h("h2", {id}, title),
    cards.length ? grid(title, cards) : h("p", {class: "empty"}, "Nothing to recommend here yet."));
}

function insight(explain, personalized = true) {
  const aff = Object.entries(explain.affinities || {}).slice(0, 6);
  return h("aside", {class: "insight", "aria-labelledby": "insight-h"},
    h("h2", {id: "insight-h"}, "What the engine knows this session"),
    !personalized ? h("p", {id: "not-personal"}, "Personalization is off: recommendations do not use your activity.")
      : aff.length ? h("ul", {}, aff.map(([key, w]) => h("li", {}, h("code", {}, key), ` ${w.toFixed(2)}`)))
        : h("p", {}, "Nothing yet: browse, search or filter and the recommendations follow."),
    h("p", {class: "small"}, `policy ${explain.policy_version ?? "?"} · models ${explain.artifact_version ?? "none"}`
      + ` · ${explain.candidates ?? 0} candidates`));
}

// -- pages ----------------------------------------------------------------------------------------
async function homePage() {
  const heading = h("h1", {tabindex: "-1"}, "Recommended for you");
  const refresh = h("button", {type: "button", id: "refresh", onclick: () => render()}, "Refresh");
  mount(main, h("div", {class: "page-head"}, heading, refresh), h("p", {}, "Loading…"));
  const got = await fetchSlate("home", {}, 12);
  const section = slateSection(got, "For you");
  const explain = got.explain;
  const top = await api("/v1/web/catalog", {params: {k: 8, in_stock: true, user_id: asker().user_id,
    anonymous_id: state.anon}});
  mount(main, h("div", {class: "page-head"}, heading, refresh),
    h("div", {class: "with-aside"}, section, insight(explain, got.personalized !== false)),
    h("section", {"aria-labelledby": "browse-h"}, h("h2", {id: "browse-h"}, "Top rated"),
      grid("Top rated", top.items.map((item) => card(item)))));
  return heading;
}

async function searchHits(q) {
  if (!q || !(await hasRoute("/v1/transparency/search"))) return null;
  try {
    // a slow search (e.g. its index still building) must not stall the page: fall back after 4 s
    const data = await Promise.race([api("/v1/transparency/search", {method: "POST", body: {query: q, k: 100,
      ...asker()}}), new Promise((_, reject) => setTimeout(() => reject(new Error("search timed out")), 4000))]);
    const hits = (data.items || []).filter((r) => r.item_id);
    return hits.length ? new Map(hits.map((r) => [r.item_id, r])) : null;
  } catch (_) {
    return null; // the search service is optional: fall back to the catalog keyword filter
  }
}

async function filtersForm(params, filters) {
  const q = params.get("q") || "";
  const facets = await api("/v1/web/facets", {params: {q, category: filters.category, brand: filters.brand}});
  const attrs = new Map((params.getAll("attr") || []).map((a) => a.split("=")));
  const select = (name, label, options, value) => h("label", {}, label,
    h("select", {name, "data-filter": name},
      h("option", {value: ""}, "Any"),
      options.map((o) => h("option", {value: o.value ?? o.name, selected: (o.value ?? o.name) === value},
        `${o.value ?? o.name} (${o.count})`))));
  // the attributes most widely present among the matches, and any already chosen
  const attrKeys = [...new Set([...attrs.keys(), ...Object.keys(facets.attributes).slice(0, ATTRIBUTE_FILTERS)])];
  for (const k of attrs.keys()) {
    if (!facets.attributes[k]) facets.attributes[k] = [{value: attrs.get(k), count: 0}];
  }
  const form = h("form", {class: "filters", "aria-label": "Filters"},
    h("h2", {}, "Filters"),
    select("category", "Category", facets.categories, params.get("category") || ""),
    select("brand", "Brand", facets.brands, params.get("brand") || ""),
    attrKeys.map((k) => select(`attr:${k}`, k.replace(/_/g, " "), facets.attributes[k], attrs.get(k) || "")),
    h("label", {}, "Max price",
      h("input", {type: "number", name: "max_price", min: "0", step: "1", inputmode: "numeric",
                  value: params.get("max_price") ? String(Number(params.get("max_price")) / 100) : ""})),
    h("label", {class: "check"}, h("input", {type: "checkbox", name: "in_stock", checked: params.get("in_stock")}),
      "In stock only"));
  form.addEventListener("change", (event) => applyFilter(form, event.target, params.get("q") || ""));
  form.addEventListener("submit", (event) => event.preventDefault());
  return form;
}

async function applyFilter(form, target, q) {
  const next = new URLSearchParams();
  if (q) next.set("q", q);
  for (const el of form.elements) {
    if (!el.name || !el.value || (el.type === "checkbox" && !el.checked)) continue;
    if (el.name.startsWith("attr:")) next.append("attr", `${el.name.slice(5)}=${el.value}`);
    else if (el.name === "max_price") next.set("max_price", String(Math.round(Number(el.value) * 100)));
    else next.set(el.name, el.type === "checkbox" ? "true" : el.value);
  }
  if (target && target.value && target.name && target.type !== "checkbox" && target.name !== "max_price") {
    const attribute = target.name.startsWith("attr:") ? target.name.slice(5) : target.name;
    await postEvents([{type: "filter", attribute, value: target.value, ...who()}]).catch(() => null);
  }
  location.hash = `#/search?${next}`;
}

async function searchPage(params) {
  const q = params.get("q") || "";
  const heading = h("h1", {tabindex: "-1"}, q ? `Results for “${q}”` : "All products");
  document.getElementById("q").value = q;
  const filters = {category: params.get("category"), brand: params.get("brand"), attr: params.getAll("attr"),
                   max_price: params.get("max_price"), in_stock: params.get("in_stock")};
  const hits = await searchHits(q);
  const ids = hits ? [...hits.keys()] : null;
  const data = await api("/v1/web/catalog",
    {params: {...filters, ...(ids ? {ids: ids.join(",")} : {q}), k: 48, user_id: asker().user_id,
              anonymous_id: state.anon}});
  const how = ids ? "ranked by /v1/search" : "keyword match on title, brand and category";
  mount(main, heading, h("div", {class: "with-filters"}, await filtersForm(params, filters),
    h("section", {"aria-labelledby": "results-h"},
      h("h2", {id: "results-h"}, `${data.total} products`, h("span", {class: "small"}, ` (${how})`)),
      data.items.length ? grid("Search results", data.items.map((item) => card(item, null, [],
          hits && hits.get(item.item_id))),
          {id: "results", "data-hash": location.hash})
        : h("p", {}, "No products match these filters."))));
  return heading;
}

async function itemPage(itemId) {
  const items = await details([itemId]);
  const item = items.get(itemId);
  if (!item) {
    const missing = h("h1", {tabindex: "-1"}, "Product not found");
    mount(main, missing);
    return missing;
  }
  await postEvents([{type: "view", item_id: itemId, ...who()}]).catch(() => null);
  const heading = h("h1", {tabindex: "-1"}, item.title);
  const complements = (r) => r.sources.some((s) => s === "covisit" || s === "sequential");
  const got = await fetchSlate("pdp", {item_id: itemId}, 12);
  const attrs = Object.entries(item.attributes || {});
  mount(main, h("article", {class: "pdp", "data-item-id": itemId},
    heading,
    h("p", {class: "meta"}, [item.brand, (item.category || []).join(" › ")].filter(Boolean).join(" · ")),
    h("p", {class: "price big"}, money(item.price)),
    h("p", {}, item.description || ""),
    attrs.length ? h("dl", {class: "attrs"}, attrs.map(([k, v]) => [h("dt", {}, k.replace(/_/g, " ")),
      h("dd", {}, Array.isArray(v) ? v.join(", ") : String(v))])) : null,
    h("button", {type: "button", class: "add primary", disabled: state.cart.includes(itemId) || !item.in_stock,
                 onclick: (e) => addToCart(item, e.currentTarget)},
      state.cart.includes(itemId) ? "In cart" : "Add to cart")),
  slateSection(got, "Similar products", (r) => !complements(r)),
  slateSection(got, "Often bought together", complements));
  return heading;
}

async function cartPage() {
  const heading = h("h1", {tabindex: "-1"}, "Your cart");
  const items = await details(state.cart);
  const lines = state.cart.filter((id) => items.has(id)).map((id) => {
    const item = items.get(id);
    return h("li", {class: "line", "data-item-id": id},
      h("a", {href: `#/item/${encodeURIComponent(id)}`}, item.title), " ", h("span", {}, money(item.price)),
      h("button", {type: "button", "aria-label": `Remove ${item.title}`, onclick: () => removeFromCart(id)},
        "Remove"));
  });
  const recs = state.cart.length ? slateSection(await fetchSlate("cart", {cart: state.cart.join(",")}), "Complete your order")
    : null;
  mount(main, heading,
    lines.length ? h("ul", {class: "cart", "aria-label": "Cart items"}, lines) : h("p", {}, "Your cart is empty."),
    lines.length ? h("button", {type: "button", class: "primary", id: "checkout",
                                onclick: () => checkout(items)}, "Place order") : null,
    recs);
  return heading;
}

// -- actions --------------------------------------------------------------------------------------
async function addToCart(item, button) {
  if (state.cart.includes(item.item_id)) return;
  state.cart.push(item.item_id);
  save();
  if (button) {
    button.textContent = "In cart";
    button.disabled = true;
  }
  await postEvents([{type: "add_to_cart", item_id: item.item_id, ...who()}]).catch(() => null);
  announce(`${item.title} added to the cart (${state.cart.length} items).`);
}

async function removeFromCart(itemId) {
  state.cart = state.cart.filter((id) => id !== itemId);
  save();
  await postEvents([{type: "remove_from_cart", item_id: itemId, ...who()}]).catch(() => null);
  render();
}

async function checkout(items) {
  const order = newId("order");
  await postEvents(state.cart.filter((id) => items.has(id)).map((id) => ({type: "purchase", item_id: id,
    order_id: order, quantity: 1, price: items.get(id).price, ...who()})));
  state.cart = [];
  save();
  announce(`Order ${order} placed.`);
  location.hash = "#/";
}

async function switchPersona(id) {
  const persona = personaList.find((p) => p.id === id);
  state = fresh(persona ? persona.id : null, persona ? `persona-${persona.id}` : "anon");
  chatNodes.length = 0;
  save();
  await loadSettings();
  if (persona) {
    await postEvents(persona.seed_item_ids.map((item_id) => ({type: "view", item_id, ...who()})));
    announce(`Now shopping as ${persona.name}: ${persona.description}.`);
  } else {
    announce("Started a new anonymous shopper.");
  }
  if (location.hash === "#/" || location.hash === "") render();
  else location.hash = "#/";
}

// -- concierge ------------------------------------------------------------------------------------
function chatProduct(p) {
  return h("li", {class: "chat-product", "data-item-id": p.item_id},
    h("a", {href: `#/item/${encodeURIComponent(p.item_id)}`}, p.title), " ", h("span", {class: "price"}, money(p.price)),
    p.reasons && p.reasons.length ? h("span", {class: "small"}, ` — ${p.reasons.join("; ")}`) : null);
}

async function say(text, log) {
  const mine = h("li", {class: "me"}, h("span", {class: "who"}, "You: "), text);
  chatNodes.push(mine);
  log.append(mine);
  if (!state.chat) state.chat = newId("chat");
  save();
  const reply = await api("/v1/concierge/messages", {method: "POST",
    body: {conversation_id: state.chat, message: text, user_id: asker().user_id, anonymous_id: state.anon}});
  const q = reply.question;
  const node = h("li", {class: "bot", "data-automated": String(reply.automated)},
    h("span", {class: "who"}, reply.automated ? "Concierge (automated assistant): " : "Concierge: "), reply.reply,
    reply.products.length ? h("ul", {class: "chat-products", "aria-label": "Suggested products"},
      reply.products.map(chatProduct)) : null,
    q && q.options.length ? h("div", {class: "options", role: "group", "aria-label": q.text},
      q.options.map((o) => h("button", {type: "button", onclick: () => say(o, log)}, o))) : null);
  chatNodes.push(node);
  log.append(node);
  announce(`Concierge: ${reply.reply}`);
}

async function conciergePage() {
  const heading = h("h1", {tabindex: "-1"}, "Shopping concierge");
  const log = h("ol", {id: "chat-log", class: "chat", "aria-label": "Conversation"}, chatNodes);
  const input = h("input", {id: "chat-input", name: "message", autocomplete: "off", maxlength: "1000",
                            placeholder: "e.g. a fragrance-free moisturizer under $30"});
  const form = h("form", {id: "chat-form", class: "chat-form"},
    h("label", {for: "chat-input"}, "Message to the concierge"), input, h("button", {type: "submit"}, "Send"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    await say(text, log).catch((err) => announce(err.message));
    input.focus();
  });
  mount(main, heading,
    h("p", {class: "disclosure", id: "assistant-disclosure"}, h("strong", {}, "Automated assistant. "),
      disclosures.assistant || "The concierge is an automated assistant, not a person."),
    log, form);
  return heading;
}

// -- personalization switch -----------------------------------------------------------------------
async function loadSettings() {
  const box = document.getElementById("personalize");
  try {
    box.checked = (await api(`/v1/transparency/settings/${encodeURIComponent(asker().user_id)}`)).personalization;
  } catch (_) {
    box.checked = true;
  }
}

async function setPersonalization(on) {
  await api(`/v1/transparency/settings/${encodeURIComponent(asker().user_id)}`,
    {method: "PUT", body: {personalization: on}});
  announce(on ? "Personalization is on." : "Personalization is off: recommendations no longer use your activity.");
  render();
}

function showDisclosures() {
  const foot = document.getElementById("disclosures");
  if (!foot) return;
  mount(foot, h("h2", {class: "sr-only"}, "Disclosures"),
    [disclosures.assistant, disclosures.personalized_prices, disclosures.personalization].filter(Boolean)
      .map((text) => h("p", {}, text)));
}

// -- router ---------------------------------------------------------------------------------------
let rendering = 0;

/** Whether a location hash names a page ("", "#/…") rather than an element on the current page. */
function isRoute(hash) {
  return hash === "" || hash.startsWith("#/");
}

async function render() {
  const ticket = ++rendering;
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query || "");
  main.setAttribute("aria-busy", "true");
  try {
    let heading;
    if (path.startsWith("/item/")) heading = await itemPage(decodeURIComponent(path.slice(6)));
    else if (path === "/search") heading = await searchPage(params);
    else if (path === "/cart") heading = await cartPage();
    else if (path === "/concierge") heading = await conciergePage();
    else heading = await homePage();
    if (ticket === rendering && heading && ticket > 1) heading.focus(); // not on first load
  } catch (err) {
    mount(main, h("h1", {tabindex: "-1"}, "Something went wrong"), h("p", {role: "alert"}, err.message));
  } finally {
    if (ticket === rendering) main.setAttribute("aria-busy", "false");
  }
}

async function init() {
  document.getElementById("search").addEventListener("submit", async (event) => {
    event.preventDefault();
    const q = document.getElementById("q").value.trim();
    if (q) await postEvents([{type: "search", query: q, ...who()}]).catch(() => null);
    location.hash = `#/search?${new URLSearchParams(q ? {q} : {})}`;
  });
  document.getElementById("anonymous").addEventListener("click", () => switchPersona(""));
  const picker = document.getElementById("persona");
  picker.addEventListener("change", () => switchPersona(picker.value));
  const box = document.getElementById("personalize");
  box.addEventListener("change", () => setPersonalization(box.checked).catch((err) => announce(err.message)));
  api("/v1/transparency/disclosures").then((d) => { disclosures = d; showDisclosures(); }).catch(() => null);
  try {
    personaList = (await api("/v1/web/personas")).personas;
  } catch (_) {
    personaList = [];
  }
  for (const p of personaList) picker.append(h("option", {value: p.id}, `${p.name} — ${p.description}`));
  save();
  await loadSettings();
  // routes are "#/…"; any other fragment (the "Skip to content" link's #main) is an in-page anchor, not a
  // new page: re-rendering would fetch a fresh slate and replace what the shopper is reading
  window.addEventListener("hashchange", () => { if (isRoute(location.hash)) render(); });
  await render();
}

init();
