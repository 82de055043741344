// The HTTP API client: one fetch wrapper (API key, JSON, the error envelope) and event helpers.

const KEY = "shopkeep.apiKey";

/** An API answer with a non-2xx status: `code`, `message` and `details` come from the error envelope. */
export class ApiError extends Error {
  constructor(status, error) {
    super(error && error.message ? error.message : `HTTP ${status}`);
    this.status = status;
    this.code = error ? error.code : "http_error";
    this.details = error ? error.details : {};
  }
}

export const apiKey = () => localStorage.getItem(KEY) || "";
export const setApiKey = (key) => (key ? localStorage.setItem(KEY, key) : localStorage.removeItem(KEY));

/** Call the API; `params` values that are arrays repeat the parameter; answers the parsed JSON. */
export async function api(path, {method = "GET", params = null, body = undefined} = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(params || {})) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== null && v !== undefined && v !== "") url.searchParams.append(name, String(v));
    }
  }
  const headers = {Accept: "application/json"};
  if (apiKey()) headers.Authorization = `Bearer ${apiKey()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data && data.error);
  return data;
}

/** A fresh id with a readable prefix. */
export function newId(prefix) {
  const rand = crypto.randomUUID ? crypto.randomUUID().replace(/-/g, "").slice(0, 16)
    : Math.random().toString(16).slice(2, 18);
  return `${prefix}-${rand}`;
}

/** Post events (wire form minus event_id/timestamp, which are filled in). */
export async function postEvents(events) {
  if (!events.length) return null;
  const now = new Date().toISOString();
  const wire = events.map((e) => ({event_id: newId("web"), timestamp: now, ...e}));
  return api("/v1/events", {method: "POST", body: {events: wire}});
}

const formats = new Map();

/** "$12.34" for {amount: 1234, currency: "USD"} (minor units; the currency's own decimals). */
export function money(price) {
  if (!price || price.amount === undefined) return "";
  const currency = price.currency || "USD";
  if (!formats.has(currency)) {
    formats.set(currency, new Intl.NumberFormat(undefined, {style: "currency", currency}));
  }
  const format = formats.get(currency);
  const digits = format.resolvedOptions().maximumFractionDigits;
  return format.format(price.amount / 10 ** digits);
}

/** Whether the server offers a route (from its OpenAPI document; cached). */
let openapi = null;
export async function hasRoute(path) {
  if (openapi === null) {
    openapi = fetch("/openapi.json").then((r) => (r.ok ? r.json() : {paths: {}})).catch(() => ({paths: {}}));
  }
  return path in ((await openapi).paths || {});
}
