// The HTTP/JSON API (docs/http-api.md): Connect's JSON form under /v1, the
// bearer token in the Authorization header only. The token lives in
// sessionStorage: gone when the tab closes, never in a URL, cookie or
// localStorage.

const TOKEN_KEY = 'exportd.token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// An API error: the canonical code ("not_found"), the server's message and
// the HTTP status.
export class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

async function errorFrom(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && body.code) return new ApiError(body.code, body.message || body.code, response.status);
  } catch (_) {
    // Not Connect's error body (a proxy's page, say): say what came back.
  }
  return new ApiError('unknown', `HTTP ${response.status}: ${text.slice(0, 200)}`, response.status);
}

function headers(contentType) {
  const h = { 'Content-Type': contentType };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

// Listeners told about every failed call whose code is "unauthenticated" (the
// app then asks for a token again).
const unauthenticatedListeners = [];
export function onUnauthenticated(listener) {
  unauthenticatedListeners.push(listener);
}

function check(error) {
  if (error.code === 'unauthenticated') unauthenticatedListeners.forEach((l) => l(error));
  return error;
}

// Calls one unary RPC: call('ExportService', 'ListExports', {}).
export async function call(service, method, request = {}, { signal } = {}) {
  const response = await fetch(`/v1/exportd.v1.${service}/${method}`, {
    method: 'POST',
    headers: headers('application/json'),
    body: JSON.stringify(request),
    signal,
  });
  if (!response.ok) throw check(await errorFrom(response));
  return response.json();
}

// Streams WatchRun's Server-Sent Events: onRun(run) for each Run; resolves
// when the stream ends (the run is final), rejects with an ApiError on an
// `event: error` or a failed request. fetch() and a reader, not EventSource,
// which cannot send the Authorization header.
export async function watchRun(runId, onRun, { signal } = {}) {
  const response = await fetch('/v1/exportd.v1.RunService/WatchRun', {
    method: 'POST',
    headers: headers('application/json'),
    body: JSON.stringify({ runId }),
    signal,
  });
  if (!response.ok) throw check(await errorFrom(response));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
      const event = parseEvent(block);
      if (!event) continue;
      if (event.type === 'error') {
        const body = JSON.parse(event.data || '{}');
        throw check(new ApiError(body.code || 'unknown', body.message || 'the stream failed', 200));
      }
      if (event.type === 'end') return;
      if (event.type === 'message' && event.data) onRun(JSON.parse(event.data));
    }
  }
}

function parseEvent(block) {
  let type = 'message';
  const data = [];
  for (const line of block.split(/\r?\n/)) {
    if (line === '' || line.startsWith(':')) continue;  // comments are keep-alives
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  }
  if (!data.length && type === 'message') return null;
  return { type, data: data.join('\n') };
}

// Uploads a CSV File as a segment's new snapshot. The browser streams the
// file from disk as the request body (XMLHttpRequest: fetch() cannot stream a
// request body over HTTP/1.1); onProgress(sent, total) follows it. Resolves
// to the UploadMembersResponse.
export function uploadCsv(segment, file, { idField = '', fields = [], onProgress } = {}) {
  const query = new URLSearchParams({ segment, filename: file.name || 'upload.csv' });
  if (idField) query.set('id-field', idField);
  for (const f of fields) query.append('field', f);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/v1/exportd.v1.SegmentService/UploadMembers?${query}`);
    xhr.setRequestHeader('Content-Type', 'text/csv');
    const t = token();
    if (t) xhr.setRequestHeader('Authorization', `Bearer ${t}`);
    xhr.upload.onprogress = (e) => onProgress && onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch (_) {
        // handled below
      }
      if (xhr.status >= 200 && xhr.status < 300 && body) {
        resolve(body);
      } else if (body && body.code) {
        reject(check(new ApiError(body.code, body.message, xhr.status)));
      } else {
        reject(new ApiError('unknown', `HTTP ${xhr.status}: ${xhr.responseText.slice(0, 200)}`, xhr.status));
      }
    };
    xhr.onerror = () => reject(new ApiError('unavailable', 'the upload was cut off (network error)', 0));
    xhr.send(file);
  });
}

// Every page of a paged List call: collects `field` until the server sends
// no next_page_token, or `limit` items.
export async function listAll(service, method, request, field, limit = 10000) {
  const items = [];
  let pageToken = '';
  do {
    const page = await call(service, method, { ...request, pageToken, pageSize: 500 });
    items.push(...(page[field] || []));
    pageToken = page.nextPageToken || '';
  } while (pageToken && items.length < limit);
  return items;
}
