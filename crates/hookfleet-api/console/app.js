// hookfleet's web console: "Settings → Webhooks" over the admin API's /v1 routes only
// (docs/contract.md §5). No framework and no build step: the binary serves this file as is.
//
// With a message history (HOOKFLEET_DATABASE_URL), history.js adds the Events pages, and the
// endpoint page's chart and Recover.
//
// Two modes. Tenant: opened as /#token=hft_… by a platform (usually in an iframe); the token
// moves to sessionStorage and leaves the address bar at once. Operator: the operator token is
// typed in once and kept in sessionStorage; it adds a tenant filter and the dead letters.
//
// Every piece of text from the API goes into the page through textContent (see `h`), never
// as HTML, so an endpoint description cannot inject markup.
'use strict';

const TOKEN_KEY = 'hookfleet.token';
const FILTER_KEY = 'hookfleet.tenant-filter';
const main = document.getElementById('main');
const nav = document.getElementById('nav');

const state = {
  token: null,
  // The tenant a tenant token is for; null for the operator.
  tenant: null,
  catalog: null,
  // A secret to show once: {id, secret, why}.
  revealed: null,
  // A one-line message for the next screen: {text, kind}.
  flash: null,
  // Whether the deployment keeps a message history: null until an answer told.
  history: null,
  // The Events list as last filtered, for an event's link back to it.
  eventsHash: null,
};

// ---------------------------------------------------------------------------------------
// Small helpers

/** An element with attributes (`on…` are listeners) and children (strings become text). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const enc = encodeURIComponent;

function when(rfc3339) {
  const at = new Date(rfc3339);
  if (Number.isNaN(at.getTime())) return rfc3339 || '';
  const seconds = Math.round((Date.now() - at.getTime()) / 1000);
  // A time to come (a rotation's end) reads "in …", a past one "… ago".
  const away = Math.abs(seconds);
  let span;
  if (away < 60) return `${seconds < 0 ? 'in a moment' : 'just now'} (${at.toLocaleString()})`;
  else if (away < 3600) span = `${Math.round(away / 60)} min`;
  else if (away < 86400) span = `${Math.round(away / 3600)} h`;
  else span = `${Math.round(away / 86400)} d`;
  return `${seconds < 0 ? `in ${span}` : `${span} ago`} (${at.toLocaleString()})`;
}

function timeEl(rfc3339) {
  return h('time', { datetime: rfc3339 }, when(rfc3339));
}

/** An attempt's outcome in a few words. */
function outcome(attempt) {
  if (!attempt.error) return `Delivered: HTTP ${attempt.status} in ${attempt.latency_ms} ms`;
  return capitalize(attempt.message);
}

function capitalize(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : '';
}

function circuitText(circuit) {
  return {
    closed: 'Healthy',
    open: 'Paused: failing, deliveries wait and retry',
    half_open: 'Recovering: trying one delivery',
  }[circuit] || circuit;
}

function firstLines(text, count) {
  const lines = (text || '').split('\n');
  return lines.slice(0, count).join('\n') + (lines.length > count ? '\n…' : '');
}

// ---------------------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `The request failed (HTTP ${status}).`);
    this.status = status;
    this.code = error.code || 'unknown';
    this.fields = error.fields || [];
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (_) {
    throw new ApiError(0, {
      error: { code: 'network', message: 'Cannot reach the webhook service. Check your connection and try again.' },
    });
  }
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

async function catalog() {
  if (!state.catalog) {
    // Test deliveries are sent on request, whatever an endpoint subscribes to; hookfleet's
    // operational types are for the operator tenant's endpoints (set up with the API or CLI).
    const types = (await api('GET', '/v1/event-types')).filter((t) => t.type !== 'webhook.test' && !t.operational);
    state.catalog = types.map((t) => t.type);
    state.typeInfo = Object.fromEntries(types.map((t) => [t.type, t]));
  }
  return state.catalog;
}

/** What the operator says of a type, for the subscribe form: its description, deprecation. */
function typeNote(type) {
  const info = (state.typeInfo || {})[type];
  if (!info || (!info.description && !info.deprecated)) return null;
  return h('span', { class: 'muted block' }, info.deprecated ? `Deprecated. ${info.description}` : info.description);
}

// ---------------------------------------------------------------------------------------
// Tokens and modes

function takeToken() {
  const match = location.hash.match(/^#token=([^&]+)/);
  if (match) {
    const offered = decodeURIComponent(match[1]);
    // Out of the address bar, the history and any screenshot, before anything else (a
    // navigation that arrives while the question below is open must not find it again).
    history.replaceState(null, '', `${location.pathname}${location.search}#/`);
    const current = sessionStorage.getItem(TOKEN_KEY);
    // A link can carry anyone's token: one for another account must not silently replace
    // the session this tab has (a customer sent into an attacker's account would set up
    // endpoints there).
    if (!current || current === offered || confirm(replaceQuestion(current, offered))) {
      sessionStorage.setItem(TOKEN_KEY, offered);
    }
  }
  state.token = sessionStorage.getItem(TOKEN_KEY);
  state.tenant = tenantOf(state.token);
}

function replaceQuestion(current, offered) {
  const name = (token) => (tenantOf(token) ? `account "${tenantOf(token)}"` : 'another sign-in');
  return `This link signs this tab in to ${name(offered)}, in place of ${name(current)}. Switch accounts?`;
}

/** The tenant a tenant token (`hft_<base64url payload>.<signature>`) names. */
function tenantOf(token) {
  if (!token || !token.startsWith('hft_')) return null;
  try {
    let payload = token.slice(4).split('.')[0].replace(/-/g, '+').replace(/_/g, '/');
    while (payload.length % 4) payload += '=';
    return JSON.parse(atob(payload)).tenant || null;
  } catch (_) {
    return null;
  }
}

function isOperator() {
  return Boolean(state.token) && !state.tenant;
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.tenant = null;
  state.catalog = null;
  location.hash = '#/';
  route();
}

// ---------------------------------------------------------------------------------------
// Screens

/** Replaces the page with a screen titled `title`, and moves focus to it. */
function show(title, ...nodes) {
  document.title = `${title} · Webhooks`;
  const flash = state.flash;
  state.flash = null;
  const parts = [
    h('h1', {}, title),
    flash && h('p', { class: `flash ${flash.kind || 'ok'}`, role: 'status' }, flash.text),
    ...nodes,
  ];
  // replaceChildren would write a null as the text "null".
  main.replaceChildren(...parts.filter(Boolean));
  main.removeAttribute('aria-busy');
  main.focus({ preventScroll: false });
}

function loading() {
  main.setAttribute('aria-busy', 'true');
  main.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
}

function renderNav() {
  const here = location.hash.replace(/^#\/?/, '').split(/[/?]/)[0];
  const link = (href, text, current) => h('a', { href, 'aria-current': current ? 'page' : null }, text);
  const links = [
    link('#/', 'Endpoints', here === '' || here === 'endpoints' || here === 'new'),
    link('#/events', 'Events', here === 'events'),
  ];
  if (isOperator()) links.push(link('#/dead-letters', 'Dead letters', here === 'dead-letters'));
  const who = state.tenant
    ? h('span', { class: 'who' }, 'Account: ', h('strong', {}, state.tenant))
    : h('span', { class: 'who' }, h('strong', {}, 'Operator'));
  const out = isOperator() ? h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out') : null;
  nav.replaceChildren(...[...links, who, out].filter(Boolean));
}

/** Shows what went wrong; `what` is the kind of thing the screen was about. */
function renderError(error, what = 'endpoint') {
  if (error.status === 401 && isOperator()) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    return renderLogin('That token is not valid (any more). Sign in again.');
  }
  if (noHistory(error)) {
    state.history = false;
    return show('Events', noHistoryNote());
  }
  let text = error.message;
  if (error.status === 401) text = 'Your session has expired. Reload this page from your dashboard to continue.';
  if (error.status === 404) text = `Not found: this ${what} does not exist, or it is not yours.`;
  const back = what === 'event'
    ? h('a', { href: state.eventsHash || '#/events' }, 'Back to the events')
    : h('a', { href: '#/' }, 'Back to the endpoints');
  show('Something went wrong', h('p', { class: 'flash error', role: 'alert' }, text), h('p', {}, back));
}

function renderLogin(problem) {
  nav.replaceChildren();
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, 'aria-describedby': 'token-help' });
  const error = h('p', { id: 'token-error', class: 'field-error', role: 'alert' }, problem || '');
  const form = h('form', {
    class: 'card',
    onsubmit: async (event) => {
      event.preventDefault();
      state.token = input.value.trim();
      state.tenant = tenantOf(state.token);
      try {
        await api('GET', '/v1/event-types');
      } catch (e) {
        state.token = null;
        error.textContent = e.status === 401 ? 'That token is not valid.' : e.message;
        input.setAttribute('aria-invalid', 'true');
        input.focus();
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, state.token);
      location.hash = '#/';
      route();
    },
  },
  h('label', { for: 'token' }, 'Operator token'),
  h('p', { id: 'token-help', class: 'muted' }, 'HOOKFLEET_API_TOKEN. It is kept in this tab only, until you close it or sign out.'),
  input, error,
  h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  show('Sign in', h('p', {}, 'Customers open this page from their dashboard. Operators sign in with the operator token.'), form);
  input.focus();
}

function operatorFilter() {
  return isOperator() ? sessionStorage.getItem(FILTER_KEY) || '' : '';
}

function tenantPicker(current, tenants) {
  const input = h('input', { id: 'tenant-filter', name: 'tenant', value: current, list: 'tenant-list', placeholder: 'All tenants' });
  return h('form', {
    class: 'filter',
    role: 'search',
    onsubmit: (event) => {
      event.preventDefault();
      sessionStorage.setItem(FILTER_KEY, input.value.trim());
      route();
    },
  },
  h('label', { for: 'tenant-filter' }, 'Tenant'), input,
  h('datalist', { id: 'tenant-list' }, tenants.map((t) => h('option', { value: t }))),
  h('button', { type: 'submit' }, 'Show'));
}

async function renderList() {
  loading();
  const filter = operatorFilter();
  const endpoints = await listEndpoints(filter);
  const nodes = [];
  if (isOperator()) {
    const tenants = [...new Set(endpoints.map((e) => e.tenant))].sort();
    nodes.push(tenantPicker(filter, tenants));
  }
  nodes.push(h('p', { class: 'actions' }, h('a', { class: 'button primary', href: '#/new' }, 'Add endpoint')));
  if (endpoints.length === 0) {
    nodes.push(h('div', { class: 'empty' },
      h('p', {}, h('strong', {}, 'No endpoints yet.')),
      h('p', {}, 'Add the URL of a server that should receive events. You can send it a test event right away.')));
  } else {
    nodes.push(endpointTable(endpoints));
  }
  show('Webhook endpoints', ...nodes);
}

/** Every endpoint the token sees (of `tenant`, when given), following the pages. */
async function listEndpoints(tenant) {
  const all = [];
  let cursor = null;
  // A tenant has at most a few hundred; the bound keeps a broken cursor from looping.
  for (let page = 0; page < 100; page++) {
    const query = new URLSearchParams({ limit: '500' });
    if (tenant) query.set('tenant', tenant);
    if (cursor) query.set('cursor', cursor);
    const listed = await api('GET', `/v1/endpoints?${query}`);
    all.push(...listed.data);
    cursor = listed.next_cursor;
    if (!cursor) break;
  }
  return all;
}

function endpointTable(endpoints) {
  const operator = isOperator();
  const rows = endpoints.map((e) => h('tr', {},
    h('td', { 'data-label': 'Endpoint' },
      h('a', { href: `#/endpoints/${enc(e.id)}`, class: 'url' }, e.url),
      e.description ? h('span', { class: 'muted block' }, e.description) : null),
    operator ? h('td', { 'data-label': 'Tenant' }, e.tenant) : null,
    h('td', { 'data-label': 'Events' }, e.events.join(', ') === '*' ? 'All events' : e.events.join(', ')),
    h('td', { 'data-label': 'Status' }, h('span', { class: `badge ${e.enabled ? 'on' : 'off'}` }, e.enabled ? 'Enabled' : 'Disabled')),
    h('td', { 'data-label': 'Health' }, circuitText(e.circuit)),
    h('td', { 'data-label': 'Last delivery' }, e.last_attempt
      ? h('span', { class: e.last_attempt.error ? 'bad' : 'good' }, outcome(e.last_attempt), h('span', { class: 'muted block' }, when(e.last_attempt.at)))
      : h('span', { class: 'muted' }, 'None yet'))));
  return h('table', { class: 'list' },
    h('caption', { class: 'visually-hidden' }, 'Your webhook endpoints'),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Endpoint'),
      operator ? h('th', { scope: 'col' }, 'Tenant') : null,
      h('th', { scope: 'col' }, 'Events'),
      h('th', { scope: 'col' }, 'Status'),
      h('th', { scope: 'col' }, 'Health'),
      h('th', { scope: 'col' }, 'Last delivery'))),
    h('tbody', {}, rows));
}

async function renderEndpoint(id) {
  loading();
  const ep = await api('GET', `/v1/endpoints/${enc(id)}`);
  const path = `/v1/endpoints/${enc(ep.id)}`;
  const result = h('div', { id: 'test-result', class: 'result', role: 'status', 'aria-live': 'polite' });
  const attempts = h('section', { 'aria-labelledby': 'attempts-title' });
  // The last 24 hours and Recover, when there is a message history.
  const lastDay = h('section', { 'aria-labelledby': 'history-title', hidden: true });

  const testButton = h('button', {
    type: 'button',
    class: 'primary',
    onclick: async () => {
      testButton.disabled = true;
      testButton.textContent = 'Sending…';
      result.replaceChildren(h('p', { class: 'muted' }, 'Sending a test event…'));
      try {
        result.replaceChildren(...testResult(await api('POST', `${path}/test`)));
      } catch (e) {
        result.replaceChildren(h('p', { class: 'flash error' }, e.message));
      }
      testButton.disabled = false;
      testButton.textContent = 'Test Webhook';
      await loadAttempts(ep, attempts);
    },
  }, 'Test Webhook');

  const toggle = h('button', {
    type: 'button',
    onclick: async () => {
      await act(async () => {
        await api('PATCH', path, { enabled: !ep.enabled });
        state.flash = { text: ep.enabled ? 'Endpoint disabled: it receives nothing until enabled again.' : 'Endpoint enabled.' };
      });
    },
  }, ep.enabled ? 'Disable' : 'Enable');

  const rotate = h('button', {
    type: 'button',
    onclick: async () => {
      if (!confirm('Make a new signing secret? The current one keeps working for 24 hours.')) return;
      await act(async () => {
        const rotated = await api('POST', `${path}/rotate-secret`);
        state.revealed = { id: ep.id, secret: rotated.secret, why: 'rotated', until: rotated.previous_secret_until };
      });
    },
  }, 'Rotate secret');

  const remove = h('button', {
    type: 'button',
    class: 'danger',
    onclick: async () => {
      if (!confirm(`Delete the endpoint ${ep.url}? It stops receiving events at once.`)) return;
      try {
        await api('DELETE', path);
        state.flash = { text: 'Endpoint deleted.' };
        location.hash = '#/';
      } catch (e) {
        result.replaceChildren(h('p', { class: 'flash error', role: 'alert' }, e.message));
      }
    },
  }, 'Delete');

  /** Runs a change, then shows the endpoint again (or the error). */
  async function act(change) {
    try {
      await change();
      await renderEndpoint(ep.id);
    } catch (e) {
      result.replaceChildren(h('p', { class: 'flash error', role: 'alert' }, e.message));
    }
  }

  const details = h('dl', { class: 'facts' },
    h('dt', {}, 'URL'), h('dd', { class: 'url' }, ep.url),
    ep.description ? [h('dt', {}, 'Description'), h('dd', {}, ep.description)] : null,
    isOperator() ? [h('dt', {}, 'Tenant'), h('dd', {}, ep.tenant)] : null,
    h('dt', {}, 'Events'), h('dd', {}, ep.events.join(', ') === '*' ? 'All events' : ep.events.join(', ')),
    h('dt', {}, 'Status'), h('dd', {}, h('span', { class: `badge ${ep.enabled ? 'on' : 'off'}` }, ep.enabled ? 'Enabled' : 'Disabled')),
    h('dt', {}, 'Health'), h('dd', {}, circuitText(ep.circuit)),
    h('dt', {}, 'Signing secret'), h('dd', {}, 'Shown once, when the endpoint is created or its secret rotated.',
      ep.previous_secret_until ? h('span', { class: 'block muted' }, 'The previous secret also signs until ', timeEl(ep.previous_secret_until), '.') : null),
    controlFacts(ep),
    h('dt', {}, 'Created'), h('dd', {}, timeEl(ep.created_at)));

  show(ep.description || 'Endpoint',
    h('p', {}, h('a', { href: '#/' }, '← All endpoints')),
    secretPanel(ep.id),
    details,
    h('div', { class: 'actions' }, testButton, h('a', { class: 'button', href: `#/endpoints/${enc(ep.id)}/edit` }, 'Edit'), rotate, toggle, remove),
    result,
    lastDay,
    attempts);
  await Promise.all([loadHistory(ep, lastDay), loadAttempts(ep, attempts)]);
}

/** The secret just made, with a copy button; shown on this one screen only. */
function secretPanel(id) {
  const revealed = state.revealed;
  if (!revealed || revealed.id !== id) return null;
  state.revealed = null;
  const field = h('input', { id: 'secret', readonly: true, value: revealed.secret, class: 'secret', spellcheck: 'false' });
  const status = h('span', { class: 'muted', role: 'status' });
  const copy = h('button', {
    type: 'button',
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(revealed.secret);
      } catch (_) {
        field.select();
        document.execCommand('copy');
      }
      status.textContent = 'Copied.';
    },
  }, 'Copy');
  const rotated = revealed.why === 'rotated';
  const why = revealed.secret.startsWith('whsk_')
    ? `This is the endpoint's private Ed25519 key. Your server verifies with the public key shown below${rotated ? ' (the previous key keeps signing beside it for 24 hours)' : ''}; keep this one only if you need it. It will not be shown again.`
    : rotated
      ? 'This is the new signing secret. The previous one keeps signing beside it for 24 hours, so switch your server over before then.'
      : 'Your server verifies each webhook with this secret (Standard Webhooks). Copy it now: it will not be shown again.';
  return h('div', { class: 'card secret-panel', role: 'region', 'aria-labelledby': 'secret-title' },
    h('h2', { id: 'secret-title' }, revealed.why === 'rotated' ? 'New signing secret' : 'Signing secret'),
    h('p', {}, why),
    h('label', { for: 'secret' }, 'Secret'),
    h('div', { class: 'row' }, field, copy, status));
}

/** A test delivery's result, in plain words. */
function testResult(r) {
  if (r.delivered) {
    return [h('p', { class: 'flash ok' }, `✓ Delivered in ${r.latency_ms} ms (HTTP ${r.status}).`)];
  }
  const nodes = [h('p', { class: 'flash error' }, `✗ Not delivered: ${r.error}.`)];
  if (r.response_body) {
    nodes.push(h('p', {}, 'Your server answered:'), h('pre', { class: 'body' }, firstLines(r.response_body, 6)));
  }
  return nodes;
}

async function loadAttempts(ep, section) {
  const failedOnly = h('input', { type: 'checkbox', id: 'failed-only' });
  const typeSelect = h('select', { id: 'attempt-type' }, h('option', { value: '' }, 'All event types'));
  const list = h('div', { class: 'attempts', 'aria-live': 'polite' });
  const more = h('button', { type: 'button', hidden: true }, 'Load older attempts');
  let all = [];

  function draw() {
    const shown = all.filter((a) => (!failedOnly.checked || a.error) && (!typeSelect.value || a.event_type === typeSelect.value));
    if (shown.length === 0) {
      list.replaceChildren(h('p', { class: 'empty' }, all.length
        ? 'No attempts match these filters.'
        : 'No attempts yet. Press Test Webhook, or wait for the next event.'));
      return;
    }
    list.replaceChildren(...shown.map(attemptItem));
  }

  async function load(before) {
    more.disabled = true;
    const query = `?limit=50${before ? `&before=${enc(before)}` : ''}`;
    const page = await api('GET', `/v1/endpoints/${enc(ep.id)}/attempts${query}`);
    all = all.concat(page);
    const types = [...new Set(all.map((a) => a.event_type))].sort();
    const chosen = typeSelect.value;
    typeSelect.replaceChildren(h('option', { value: '' }, 'All event types'),
      ...types.map((t) => h('option', { value: t, selected: t === chosen }, t)));
    more.hidden = page.length < 50;
    more.disabled = false;
    draw();
  }

  failedOnly.addEventListener('change', draw);
  typeSelect.addEventListener('change', draw);
  more.addEventListener('click', () => load(all.length ? all[all.length - 1].id : undefined));

  section.replaceChildren(
    h('h2', { id: 'attempts-title' }, 'Delivery attempts'),
    h('div', { class: 'filter' },
      h('span', { class: 'check' }, failedOnly, h('label', { for: 'failed-only' }, 'Failed only')),
      h('label', { for: 'attempt-type' }, 'Event type'), typeSelect),
    list, more);
  try {
    await load();
  } catch (e) {
    list.replaceChildren(h('p', { class: 'flash error', role: 'alert' }, e.message));
  }
}

function attemptItem(a) {
  return h('details', { class: `attempt ${a.error ? 'failed' : 'delivered'}` },
    h('summary', {},
      h('span', { class: 'mark', 'aria-hidden': 'true' }, a.error ? '✗' : '✓'),
      h('span', { class: 'what' }, `${a.event_type} · attempt ${a.attempt}${a.source === 'test' ? ' (test)' : ''}`),
      h('span', { class: 'outcome' }, outcome(a)),
      h('span', { class: 'muted' }, when(a.at))),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Result'), h('dd', {}, capitalize(a.message)),
      h('dt', {}, 'HTTP status'), h('dd', {}, a.status === null ? 'No answer' : String(a.status)),
      h('dt', {}, 'Latency'), h('dd', {}, `${a.latency_ms} ms`),
      h('dt', {}, 'Event id'), h('dd', { class: 'mono' }, a.event_id),
      h('dt', {}, 'Time'), h('dd', {}, timeEl(a.at)),
      h('dt', {}, 'Response body'), h('dd', {}, a.response_body
        ? h('pre', { class: 'body' }, a.response_body)
        : h('span', { class: 'muted' }, 'Empty'))));
}

async function renderForm(id) {
  loading();
  const types = await catalog();
  const ep = id ? await api('GET', `/v1/endpoints/${enc(id)}`) : null;
  const all = ep ? ep.events.includes('*') : false;
  const errors = {};
  const field = (name, control, help) => {
    errors[name] = h('p', { id: `${name}-error`, class: 'field-error' });
    control.setAttribute('aria-describedby', [help ? `${name}-help` : null, `${name}-error`].filter(Boolean).join(' '));
    return h('div', { class: 'field' },
      h('label', { for: name }, control.dataset.label),
      help ? h('p', { id: `${name}-help`, class: 'muted' }, help) : null,
      control, errors[name]);
  };
  const url = h('input', { id: 'url', name: 'url', type: 'url', required: true, value: ep ? ep.url : '', placeholder: 'https://example.com/webhooks', 'data-label': 'Endpoint URL', autocomplete: 'url' });
  const description = h('textarea', { id: 'description', name: 'description', maxlength: 500, rows: 2, 'data-label': 'Description (optional)' }, ep ? ep.description : '');
  const tenant = isOperator() && !ep
    ? h('input', { id: 'tenant', name: 'tenant', required: true, value: operatorFilter(), 'data-label': 'Tenant' })
    : null;
  const everything = h('input', { type: 'checkbox', id: 'event-all', name: 'events', value: '*', checked: all });
  const boxes = types.map((t) => h('input', { type: 'checkbox', id: `event-${t}`, name: 'events', value: t, checked: ep ? !all && ep.events.includes(t) : false }));
  errors.events = h('p', { id: 'events-error', class: 'field-error' });
  const events = h('fieldset', { id: 'events', 'aria-describedby': 'events-error' },
    h('legend', {}, 'Events to send'),
    h('div', { class: 'check' }, everything, h('label', { for: 'event-all' }, 'All events, including types added later')),
    ...types.map((t, i) => h('div', { class: 'check' }, boxes[i], h('label', { for: `event-${t}` }, t, typeNote(t)))),
    errors.events);
  const controls = controlFields(field, ep);
  const summary = h('div', { class: 'flash error', role: 'alert', hidden: true, tabindex: '-1' });
  const save = h('button', { type: 'submit', class: 'primary' }, ep ? 'Save changes' : 'Save configuration');

  const form = h('form', {
    class: 'card',
    novalidate: true,
    onsubmit: async (event) => {
      event.preventDefault();
      for (const [name, el] of Object.entries(errors)) {
        el.textContent = '';
        const control = document.getElementById(name);
        if (control) control.removeAttribute('aria-invalid');
      }
      summary.hidden = true;
      const chosen = everything.checked ? ['*'] : boxes.filter((b) => b.checked).map((b) => b.value);
      const body = { url: url.value.trim(), events: chosen, description: description.value };
      if (tenant) body.tenant = tenant.value.trim();
      try {
        Object.assign(body, controls.read());
      } catch (fault) {
        showFieldErrors(new ApiError(422, { error: { code: 'validation_failed', message: fault.message, fields: [fault] } }), errors, summary);
        return;
      }
      save.disabled = true;
      try {
        if (ep) {
          const saved = await api('PATCH', `/v1/endpoints/${enc(ep.id)}`, body);
          // A new signature scheme comes with a new secret, shown this once.
          if (saved.secret) state.revealed = { id: ep.id, secret: saved.secret, why: 'rotated' };
          state.flash = { text: 'Changes saved.' };
          location.hash = `#/endpoints/${enc(ep.id)}`;
        } else {
          const created = await api('POST', '/v1/endpoints', body);
          state.revealed = { id: created.id, secret: created.secret, why: 'created' };
          state.flash = { text: 'Endpoint saved. Send it a test event to check it works.' };
          location.hash = `#/endpoints/${enc(created.id)}`;
        }
      } catch (e) {
        save.disabled = false;
        showFieldErrors(e, errors, summary);
      }
    },
  },
  summary,
  tenant ? field('tenant', tenant) : null,
  field('url', url, 'Where to send events: an https address of your server.'),
  events,
  field('description', description),
  controls.nodes,
  h('div', { class: 'actions' }, save, h('a', { class: 'button', href: ep ? `#/endpoints/${enc(ep.id)}` : '#/' }, 'Cancel')));
  show(ep ? 'Edit endpoint' : 'Add an endpoint', form);
  (tenant || url).focus();
}

function showFieldErrors(error, errors, summary) {
  const known = error.fields.filter((f) => errors[f.field]);
  if (error.code !== 'validation_failed' || known.length === 0) {
    summary.textContent = error.message;
    summary.hidden = false;
    summary.focus();
    return;
  }
  summary.replaceChildren(h('p', {}, `Please correct ${known.length === 1 ? 'this field' : `these ${known.length} fields`}:`),
    h('ul', {}, known.map((f) => h('li', {}, h('a', { href: `#${f.field}`, onclick: (e) => { e.preventDefault(); document.getElementById(f.field).focus(); } }, `${label(f.field)}: ${f.message}`)))));
  summary.hidden = false;
  for (const f of known) {
    errors[f.field].textContent = f.message;
    const control = document.getElementById(f.field);
    if (control) control.setAttribute('aria-invalid', 'true');
  }
  const first = document.getElementById(known[0].field);
  (first.tagName === 'FIELDSET' ? first.querySelector('input') : first).focus();
}

function label(field) {
  return {
    url: 'Endpoint URL', events: 'Events', description: 'Description', tenant: 'Tenant',
    headers: 'Custom headers', sensitive_headers: 'Sensitive headers', rate_limit: 'Rate limit',
    max_in_flight: 'Requests at once', filter: 'Payload filter', ordered: 'Deliver in order', signature: 'Signature', secret: 'Signature',
  }[field] || field;
}

async function renderDeadLetters() {
  if (!isOperator()) {
    return renderError(new ApiError(404, null));
  }
  loading();
  const letters = await api('GET', '/v1/dead-letters?limit=100');
  const status = h('div', { role: 'status', 'aria-live': 'polite' });

  async function replay(endpoint) {
    try {
      const report = await api('POST', '/v1/dead-letters/replay', endpoint ? { endpoint } : {});
      state.flash = { text: `Replayed ${report.replayed} dead letter${report.replayed === 1 ? '' : 's'}.` };
      await renderDeadLetters();
    } catch (e) {
      status.replaceChildren(h('p', { class: 'flash error', role: 'alert' }, e.message));
    }
  }

  const nodes = [h('p', {}, 'Deliveries that failed every attempt, or that broke the message format. Replaying sends them again with a fresh attempt count.'), status];
  if (letters.length === 0) {
    nodes.push(h('div', { class: 'empty' }, h('p', {}, h('strong', {}, 'No dead letters.')), h('p', {}, 'Everything was delivered or is still being retried.')));
  } else {
    nodes.push(h('p', { class: 'actions' }, h('button', { type: 'button', class: 'primary', onclick: () => replay(null) }, `Replay all (${letters.length})`)));
    nodes.push(h('table', { class: 'list' },
      h('caption', { class: 'visually-hidden' }, 'Dead letters, oldest first'),
      h('thead', {}, h('tr', {}, ['Event', 'Tenant', 'Endpoint', 'Attempts', 'Why', 'When', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, letters.map((d) => h('tr', {},
        h('td', { 'data-label': 'Event' }, h('span', { class: 'mono block' }, d.event_id || '—'), d.event_type || ''),
        h('td', { 'data-label': 'Tenant' }, d.tenant || '—'),
        h('td', { 'data-label': 'Endpoint' }, d.endpoint ? h('a', { class: 'mono', href: `#/endpoints/${enc(d.endpoint)}` }, d.endpoint) : '—'),
        h('td', { 'data-label': 'Attempts' }, String(d.attempts)),
        h('td', { 'data-label': 'Why' }, d.last_error || d.reason),
        h('td', { 'data-label': 'When' }, d.dead_at ? timeEl(d.dead_at) : '—'),
        h('td', {}, d.endpoint
          ? h('button', { type: 'button', onclick: () => replay(d.endpoint), 'aria-label': `Replay the dead letters of ${d.endpoint}` }, 'Replay')
          : null))))));
  }
  show('Dead letters', ...nodes);
}

// ---------------------------------------------------------------------------------------
// Routing: #/, #/new, #/endpoints/<id>, #/endpoints/<id>/edit, #/dead-letters,
// #/events?<filters>, #/events/<id>

async function route() {
  takeToken();
  if (!state.token) return renderLogin();
  renderNav();
  const [where, search] = location.hash.replace(/^#\/?/, '').split('?');
  const parts = where.split('/').filter(Boolean).map(decodeURIComponent);
  try {
    if (parts[0] === 'new') return await renderForm(null);
    if (parts[0] === 'endpoints' && parts[1] && parts[2] === 'edit') return await renderForm(parts[1]);
    if (parts[0] === 'endpoints' && parts[1]) return await renderEndpoint(parts[1]);
    if (parts[0] === 'dead-letters') return await renderDeadLetters();
    if (parts[0] === 'events' && parts[1]) return await renderEvent(parts[1]);
    if (parts[0] === 'events') return await renderEvents(new URLSearchParams(search || ''));
    return await renderList();
  } catch (e) {
    return renderError(e, parts[0] === 'events' ? 'event' : 'endpoint');
  }
}

window.addEventListener('hashchange', route);
route();
