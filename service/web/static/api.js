// The API client every page uses: the key kept for this browser tab, JSON requests with
// `Authorization: Bearer <key>`, errors as {code, message, field}, and a small DOM helper.

const KEY = "arbiter.key";

export class ApiError extends Error {
  constructor(status, body) {
    super(body.message || `HTTP ${status}`);
    this.status = status;
    this.code = body.code || "error";
    this.field = body.field || null;
  }
}

export function savedKey() {
  return sessionStorage.getItem(KEY);
}

export function saveKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function signOut() {
  sessionStorage.removeItem(KEY);
  location.assign("/ui/");
}

/** The page needs a key: without one, go to the sign-in page (and come back after). */
export function requireKey() {
  const key = savedKey();
  if (!key) {
    location.assign(`/ui/?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new Error("not signed in");
  }
  return key;
}

/** A request to the API; resolves to the JSON body (null for 204), rejects with ApiError. */
export async function api(method, path, { body, key, raw } = {}) {
  const headers = { Authorization: `Bearer ${key || savedKey() || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && !key) {
    signOut();
    throw new ApiError(401, { message: "your key is no longer valid" });
  }
  if (!response.ok) {
    let detail = {};
    try {
      detail = await response.json();
    } catch {
      detail = { message: `${response.status} ${response.statusText}` };
    }
    throw new ApiError(response.status, detail);
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

/** An element with attributes, properties and children (strings become text nodes). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Show a message in the page's status region (read out by screen readers). */
export function announce(text, kind = "info") {
  const region = document.getElementById("status");
  if (!region) return;
  region.textContent = text;
  region.dataset.kind = kind;
}

/** The header every signed-in page shows: who is signed in, navigation, sign out. */
export async function header(active) {
  const me = await api("GET", "/v1/me");
  const nav = document.getElementById("nav");
  const links = [["annotate", "Annotate", "/ui/annotate"]];
  if (me.role !== "annotator") {
    links.push(["projects", "Projects", "/ui/projects"], ["jobs", "Jobs", "/ui/jobs"]);
  }
  nav.replaceChildren(
    el(
      "ul",
      {},
      links.map(([id, label, href]) =>
        el("li", {}, el("a", { href, "aria-current": id === active ? "page" : null }, label)),
      ),
    ),
    el("span", { class: "who" }, `${me.name} (${me.role})`),
    el("button", { type: "button", onclick: signOut }, "Sign out"),
  );
  return me;
}

/** A page's numeric id parameter (?name=N), or null when it is missing or not a number. */
export function idParam(name) {
  const value = new URLSearchParams(location.search).get(name);
  return value && /^[1-9][0-9]{0,9}$/.test(value) ? value : null;
}

/** Every row of a paginated listing (following next_cursor). */
export async function allPages(path) {
  const rows = [];
  let cursor = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api("GET", cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path);
    rows.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor);
  return rows;
}

export function fmt(value, digits = 2) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}
