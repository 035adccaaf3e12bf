// JSON API calls with the double-submit CSRF token (docs/api.md). Errors throw ApiError.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || '';
  }
}

let csrfToken = null;

export async function csrf() {
  if (!csrfToken) {
    const response = await fetch('/api/csrf', { credentials: 'same-origin', cache: 'no-store' });
    if (!response.ok) throw new ApiError(response.status, 'csrf', 'csrf');
    csrfToken = (await response.json()).csrf_token;
  }
  return csrfToken;
}

export function setCsrfToken(token) { if (token) csrfToken = token; }

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (method !== 'GET' && method !== 'HEAD') {
    headers['X-CSRF-Token'] = await csrf();
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
  }
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (!response.ok) {
    const err = (data && data.error) || data || {};
    throw new ApiError(response.status, err.code, err.message);
  }
  return data;
}
