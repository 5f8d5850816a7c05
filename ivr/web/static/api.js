// The REST API as the pages use it: the bearer token of this tab, JSON in
// and out, and errors in words. The token lives in sessionStorage: it
// survives a reload and is shared by the pages of one tab, never by other
// tabs, and is deleted on sign-out (POST /v1/auth/logout ends it server-side).

const TOKEN_KEY = "ivr.token";

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function authHeaders(extra = {}) {
  const t = token();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : { ...extra };
}

async function errorOf(resp) {
  let body = null;
  try {
    body = await resp.json();
  } catch {
    body = null;
  }
  const e = body?.error ?? {};
  return new ApiError(resp.status, e.code ?? "http_error", e.message ?? `HTTP ${resp.status}`, body);
}

/**
 * Call the API. `body` is sent as JSON. Returns the parsed JSON (or null for
 * 204), or with `raw: true` the Response itself. Throws ApiError otherwise.
 */
export async function api(path, { method = "GET", body, query, raw = false, headers = {}, signal } = {}) {
  let url = path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
    const s = q.toString();
    if (s) url += `?${s}`;
  }
  const init = { method, headers: authHeaders(headers), signal, cache: "no-store" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const resp = await fetch(url, init);
  if (!resp.ok) {
    const err = await errorOf(resp);
    if (resp.status === 401 && path !== "/v1/auth/login") {
      setToken(null);
      window.dispatchEvent(new CustomEvent("ivr:signed-out", { detail: err.message }));
    }
    throw err;
  }
  if (raw) return resp;
  if (resp.status === 204) return null;
  return resp.json();
}

/** Sign in; returns the user. Errors come back as sentences for the page. */
export async function signIn(email, password) {
  try {
    const out = await api("/v1/auth/login", { method: "POST", body: { email, password } });
    setToken(out.token);
    return out.user;
  } catch (err) {
    if (err instanceof ApiError) {
      if (err.status === 401) throw new ApiError(401, err.code, "Sign-in failed: wrong e-mail or password.");
      if (err.status === 429) {
        const s = err.body?.error?.retry_after_s ?? 900;
        throw new ApiError(429, err.code, `Too many failed sign-ins. Try again in ${Math.ceil(s / 60)} minute(s).`);
      }
      if (err.status === 422) throw new ApiError(422, err.code, "Sign-in failed: enter an e-mail address and a password.");
    }
    throw new ApiError(0, "network", "Sign-in failed: the server could not be reached.");
  }
}

/** The signed-in user of this tab, or null. */
export async function currentUser() {
  if (!token()) return null;
  try {
    return await api("/v1/me");
  } catch {
    setToken(null);
    return null;
  }
}

export async function signOut() {
  if (token()) {
    try {
      await api("/v1/auth/logout", { method: "POST" });
    } catch {
      // the token is dropped here either way
    }
  }
  setToken(null);
}

export const ROLE_NAMES = { agent: "Agent", supervisor: "Supervisor", admin: "Admin", owner: "Owner" };

/** A problem list (422 problems) as lines of text. */
export function problemLines(err) {
  const problems = err?.body?.error?.problems;
  if (!Array.isArray(problems)) return [err.message];
  return problems.map((p) => (p.rule ? `${p.message}` : `${p.path ? `${p.path}: ` : ""}${p.message}`));
}

// The sign-in form of the QA console and the admin dashboard: the same fields
// (#email, #password), the same messages, then the page's own start.
export function bindSignInForm(form, { problem, notice, onSignedIn }) {
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    problem("");
    const email = form.querySelector("#email").value.trim();
    const passwordField = form.querySelector("#password");
    if (!email || !passwordField.value) {
      problem("Enter your e-mail address and password.");
      return;
    }
    let user;
    try {
      user = await signIn(email, passwordField.value);
    } catch (err) {
      problem(err.message);
      passwordField.focus();
      return;
    }
    passwordField.value = "";
    notice("");
    await onSignedIn(user);
  });
}
