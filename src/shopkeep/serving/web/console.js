// The merchandiser console: policy rules editor, what-if sliders with a trade-off plot, live metrics.
import {api, ApiError, apiKey, hasRoute, money, setApiKey} from "./api.js";
import {announce, h, mount} from "./dom.js";
import {tradeoffPlot} from "./plot.js";

const TEMPLATES = {
  "exclude a brand": {kind: "exclude", select: {brands: ["Brand name"]}},
  "boost a category": {kind: "boost", select: {categories: ["Category"]}, multiply: 1.5},
  "pin an item": {kind: "pin", item_id: "item-id", position: 0, surfaces: ["home"]},
  "diversity cap": {kind: "diversity", by: "brand", max_per: 2, top_k: 10},
};
let policy = null;

// -- policy editor --------------------------------------------------------------------------------
function ruleItem(rule, index) {
  const id = `rule-${index}`;
  const area = h("textarea", {id, "aria-describedby": `${id}-err`, spellcheck: "false", "data-rule-index": index},
    JSON.stringify(rule, null, 1).replace(/\n\s*/g, " "));
  return h("li", {"data-rule-index": index},
    h("div", {class: "rule-head"},
      h("label", {for: id}, `Rule ${index + 1}`, rule.id ? h("code", {}, ` ${rule.id}`) : "", ` (${rule.kind})`),
      h("button", {type: "button", "aria-label": `Remove rule ${index + 1}`, onclick: () => removeRule(index)},
        "Remove")),
    area,
    h("p", {id: `${id}-err`, class: "error rule-error", role: "alert"}));
}

function renderRules(rules) {
  mount(document.getElementById("rules"), rules.map(ruleItem));
}

function currentRules() {
  const rules = [];
  let bad = false;
  for (const area of document.querySelectorAll("#rules textarea")) {
    try {
      rules.push(JSON.parse(area.value));
      area.removeAttribute("aria-invalid");
    } catch (err) {
      bad = true;
      showRuleError(Number(area.dataset.ruleIndex), `not valid JSON: ${err.message}`);
    }
  }
  return bad ? null : rules;
}

function clearErrors() {
  document.getElementById("policy-error").textContent = "";
  for (const p of document.querySelectorAll(".rule-error")) p.textContent = "";
  for (const a of document.querySelectorAll("#rules textarea")) a.removeAttribute("aria-invalid");
}

function showRuleError(index, message) {
  const area = document.getElementById(`rule-${index}`);
  const where = document.getElementById(`rule-${index}-err`);
  if (!area || !where) {
    document.getElementById("policy-error").textContent = message;
    return;
  }
  area.setAttribute("aria-invalid", "true");
  where.textContent = message;
  area.focus();
}

async function loadPolicy() {
  policy = await api("/v1/policies");
  clearErrors();
  renderRules(policy.rules || []);
  document.getElementById("policy-version").textContent =
    `Version ${policy.version} (${policy.hash}) · ${policy.name || "unnamed policy"}`;
}

function removeRule(index) {
  const rules = currentRules();
  if (!rules) return;
  rules.splice(index, 1);
  renderRules(rules);
  announce(`Rule ${index + 1} removed (not saved yet).`);
}

async function savePolicy() {
  clearErrors();
  const rules = currentRules();
  if (!rules) return;
  const body = {...policy, rules};
  delete body.version;
  delete body.hash;
  try {
    policy = await api("/v1/policies", {method: "PUT", body});
    renderRules(policy.rules || []);
    document.getElementById("policy-version").textContent = `Version ${policy.version} (${policy.hash}) saved`;
    announce(`Policy version ${policy.version} saved.`);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    const field = (err.details && err.details.field) || "";
    const match = /^rules\[(\d+)\]/.exec(field);
    if (match) showRuleError(Number(match[1]), err.message);
    else document.getElementById("policy-error").textContent = err.message;
  }
}

// -- what-if --------------------------------------------------------------------------------------
let whatifTicket = 0;

async function drawWhatIf() {
  const margin = Number(document.getElementById("margin").value);
  const diversity = Number(document.getElementById("diversity").value);
  document.getElementById("margin-out").textContent = margin.toFixed(2);
  document.getElementById("diversity-out").textContent = diversity.toFixed(1);
  const ticket = ++whatifTicket;
  const data = await api("/v1/web/whatif", {params: {margin, diversity}});
  if (ticket !== whatifTicket) return; // a newer slider position is on its way
  const cur = data.currency || "USD";
  const m = (v) => money({amount: Math.round(v), currency: cur});
  const pct = (v) => `${(100 * v).toFixed(0)}%`;
  const points = data.curve.map((p) => ({x: p.relevance, y: p.expected_margin_minor, label: `w=${p.margin_weight}`}));
  const now = {x: data.current.relevance, y: data.current.expected_margin_minor};
  const plot = tradeoffPlot(points, now, {xLabel: "relevance kept (vs margin weight 0)",
    yLabel: "expected margin per slate", xFormat: pct, yFormat: m,
    title: `Relevance vs expected margin over margin weights, diversity ${diversity}`});
  plot.firstChild.dataset.margin = String(margin);
  plot.firstChild.dataset.diversity = String(diversity);
  mount(document.getElementById("plot"), plot,
    h("figcaption", {class: "small"}, `${data.n_requests} sampled product-page requests, top ${data.k}; `
      + `live objective: margin ${data.live_objective.margin}`));
  mount(document.getElementById("whatif-now"),
    h("dt", {}, "Margin weight"), h("dd", {}, margin.toFixed(2)),
    h("dt", {}, "Relevance kept"), h("dd", {id: "now-relevance"}, pct(data.current.relevance)),
    h("dt", {}, "Expected margin / slate"), h("dd", {id: "now-margin"}, m(data.current.expected_margin_minor)),
    h("dt", {}, "Distinct brands / slate"), h("dd", {id: "now-brands"}, data.current.distinct_brands.toFixed(2)));
}

// -- live metrics ---------------------------------------------------------------------------------
function table(caption, head, rows) {
  return h("table", {}, h("caption", {class: "small"}, caption),
    h("thead", {}, h("tr", {}, head.map((c) => h("th", {scope: "col"}, c)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c, i) => (i ? h("td", {}, c) : h("th", {scope: "row"}, c)))))));
}

async function drawMetrics() {
  const data = await api("/v1/web/metrics");
  const ms = (v) => (v === null || v === undefined ? "–" : `${v.toFixed(1)} ms`);
  const lat = Object.entries(data.latency_ms).map(([route, p]) => [route, ms(p.p50), ms(p.p95), ms(p.p99)]);
  const ctr = Object.entries(data.click_through).map(([source, c]) =>
    [source, String(c.impressions), String(c.clicks), c.ctr === null ? "–" : `${(100 * c.ctr).toFixed(1)}%`]);
  mount(document.getElementById("metrics-body"),
    h("p", {}, `Events accepted: ${data.events_accepted} · ${data.events_per_s.toFixed(2)} events/s · slates `
      + Object.entries(data.slates).map(([k, v]) => `${k} ${v}`).join(", ") + ` · policy version ${data.policy_version}`),
    table("Server-side latency (this worker)", ["route", "p50", "p95", "p99"], lat),
    ctr.length ? table("Click-through by retrieval source (impressions and clicks that carry a trace id)",
      ["source", "impressions", "clicks", "CTR"], ctr)
      : h("p", {class: "small"}, "No impressions yet: shop in the storefront to see click-through by source."));
}

// -- offers audit log -----------------------------------------------------------------------------
async function drawAudit() {
  const body = document.getElementById("audit-body");
  let data;
  try {
    data = await api("/v1/audit/decisions", {params: {k: 50}});
  } catch (err) {
    mount(body, h("p", {class: "error"}, `The audit log needs an admin key: ${err.message}`));
    return;
  }
  if (!data.decisions.length) {
    mount(body, h("p", {class: "small"}, "No offer decisions yet (POST /v1/offers/decide records them)."));
    return;
  }
  const rows = data.decisions.map((d) => h("tr", {"data-decision-id": d.decision_id},
    h("th", {scope: "row"}, h("code", {}, d.decision_id)), h("td", {}, d.shopper_key), h("td", {}, d.action),
    h("td", {}, d.personalized_price ? "yes" : "no"), h("td", {}, money(d.offer_price)),
    h("td", {}, (d.recorded_at || "").replace("T", " ").slice(0, 19)),
    h("td", {}, h("button", {type: "button", "aria-label": `Details of ${d.decision_id}`,
                             onclick: () => showDecision(d.decision_id)}, "Details"))));
  mount(body, h("table", {class: "audit"}, h("caption", {class: "small"}, `${data.count} newest decisions`),
    h("thead", {}, h("tr", {}, ["decision", "shopper key", "action", "personalized price", "offer price",
      "recorded (UTC)", ""].map((c) => h("th", {scope: "col"}, c)))),
    h("tbody", {}, rows)));
}

async function showDecision(id) {
  const doc = await api(`/v1/audit/decisions/${encodeURIComponent(id)}`);
  const cands = doc.candidates.map((c) => [c.action, c.allowed ? "allowed" : "blocked",
    (c.expected_value || 0).toFixed(1),
    c.verdicts.filter((v) => !v.passed).map((v) => `${v.rule}: ${v.code}`).join("; ") || "–"]);
  const detail = document.getElementById("audit-detail");
  mount(detail, h("h3", {id: "decision-h", tabindex: "-1"}, `Decision ${doc.decision_id}`),
    h("p", {}, `Chose ${doc.action} for ${doc.shopper_key}; models ${JSON.stringify(doc.model_versions)}.`),
    table("Candidates and guardrail verdicts", ["action", "verdict", "expected value (cents)", "failed rules"], cands));
  document.getElementById("decision-h").focus();
}

// -- experiments (when the server offers reports) --------------------------------------------------
async function setupExperiments() {
  if (!(await hasRoute("/v1/experiments/{experiment_id}/report"))) return;
  document.getElementById("experiments").hidden = false;
  document.getElementById("experiment-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = document.getElementById("experiment-id").value.trim();
    const out = document.getElementById("experiment-body");
    if (!id) return;
    try {
      const report = await api(`/v1/experiments/${encodeURIComponent(id)}/report`);
      mount(out, experimentTable(report));
    } catch (err) {
      mount(out, h("p", {class: "error"}, err.message));
    }
  });
}

function experimentTable(report) {
  // one row per arm/metric when the report lists them, else the report as JSON
  const arms = report.arms || report.variants || null;
  if (Array.isArray(arms) && arms.length && typeof arms[0] === "object") {
    const cols = Object.keys(arms[0]);
    return table(`Experiment ${report.experiment_id || ""}`, cols,
      arms.map((a) => cols.map((c) => (typeof a[c] === "object" ? JSON.stringify(a[c]) : String(a[c])))));
  }
  return h("pre", {class: "json"}, JSON.stringify(report, null, 2));
}

// -- wiring ---------------------------------------------------------------------------------------
function debounce(fn, ms) {
  let timer = null;
  return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
}

async function init() {
  const picker = document.getElementById("template");
  for (const name of Object.keys(TEMPLATES)) picker.append(h("option", {value: name}, name));
  document.getElementById("add-rule").addEventListener("click", () => {
    const rules = currentRules();
    if (!rules) return;
    rules.push(structuredClone(TEMPLATES[picker.value]));
    renderRules(rules);
    document.getElementById(`rule-${rules.length - 1}`).focus();
  });
  document.getElementById("save-policy").addEventListener("click", savePolicy);
  document.getElementById("reload-audit").addEventListener("click", () => drawAudit());
  setupExperiments().catch(() => null);
  document.getElementById("reload-policy").addEventListener("click", loadPolicy);
  const redraw = debounce(() => drawWhatIf().catch((e) => announce(e.message)), 120);
  document.getElementById("margin").addEventListener("input", redraw);
  document.getElementById("diversity").addEventListener("input", redraw);
  document.getElementById("api-key").value = apiKey();
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey(document.getElementById("api-key").value.trim());
    start();
  });
  await start();
  setInterval(() => drawMetrics().catch(() => null), 3000);
}

async function start() {
  try {
    await Promise.all([loadPolicy(), drawWhatIf(), drawMetrics(), drawAudit()]);
  } catch (err) {
    document.getElementById("policy-error").textContent = err.message;
  }
}

init();
