// The message history in the console (docs/contract.md §5, "Message history"): the Events page,
// one event with its payload and every endpoint's attempts (with Resend), and on an endpoint's
// page its last 24 hours as a chart, with Recover. Only when the deployment keeps a history
// (HOOKFLEET_DATABASE_URL): otherwise the API answers 404 saying so, and the Events page says so
// in plain words while the endpoint page leaves the chart and Recover out.
//
// Loaded before app.js, whose helpers (h, api, show, state, attemptItem…) these call when they
// run; app.js's router calls renderEvents and renderEvent, its endpoint page loadHistory.
'use strict';

const HOUR_MS = 3600 * 1000;

/** The time windows offered, as `since` = now − ms (`null`: no bound). */
const WINDOWS = [
  { key: '1h', label: 'Last hour', ms: HOUR_MS },
  { key: '24h', label: 'Last 24 hours', ms: 24 * HOUR_MS },
  { key: '7d', label: 'Last 7 days', ms: 7 * 24 * HOUR_MS },
  { key: '30d', label: 'Last 30 days', ms: 30 * 24 * HOUR_MS },
  { key: 'all', label: 'Any time', ms: null },
];
const DEFAULT_WINDOW = '7d';
/** Recover is for an outage just past: a bounded window only. */
const RECOVER_WINDOWS = WINDOWS.filter((w) => ['1h', '24h', '7d'].includes(w.key));

/** A status-filtered page may be short, even empty, with more after it (each page looks at
 * up to 2,000 events): this many are followed before asking the reader to load more. */
const EMPTY_PAGES_FOLLOWED = 5;
/** After a resend, the event is read again every second until the attempt shows, this long. */
const FOLLOW_SECONDS = 30;

const STATUS_WORDS = { delivered: 'Delivered', failed: 'Failed', pending: 'Pending' };
const STATUS_BADGE = { delivered: 'on', failed: 'fail', pending: 'off' };
/** What failed attempts of each error class did, after their number: "8 timed out". */
const FAILURE_WORDS = {
  non_success_status: 'answered with an error status',
  timeout: 'timed out',
  connection_refused: 'had the connection refused',
  dns: 'could not resolve the host name',
  tls: 'failed the TLS handshake',
  connection: 'lost the connection',
  blocked_target: 'went to a blocked address',
};

function sinceOf(key) {
  const window = WINDOWS.find((w) => w.key === key);
  return window && window.ms ? new Date(Date.now() - window.ms).toISOString() : null;
}

/** The API's 404 for a deployment without a message history (it names the setting). */
function noHistory(error) {
  return error.status === 404 && /HOOKFLEET_DATABASE_URL/.test(error.message);
}

/** What the page says instead of the history, when there is none. */
function noHistoryNote() {
  return h('div', { class: 'empty' },
    h('p', {}, h('strong', {}, 'No event history here.')),
    h('p', {}, 'This webhook service does not keep a history of events, so they cannot be searched or sent again. Each endpoint\'s page shows its recent delivery attempts.'),
    isOperator() ? h('p', {}, 'To keep one, set HOOKFLEET_DATABASE_URL (PostgreSQL) and run hookfleet migrate.') : null);
}

/** Why a request failed, as the middle of a sentence: each wrong field's message, or the
 * API's own words. */
function reason(error) {
  const text = error.fields.length ? error.fields.map((f) => f.message).join('; ') : error.message;
  return text.replace(/\.$/, '');
}

function statusBadge(status) {
  return h('span', { class: `badge ${STATUS_BADGE[status] || 'off'}` }, STATUS_WORDS[status] || status);
}

function plural(count, word) {
  return `${count.toLocaleString()} ${word}${count === 1 ? '' : 's'}`;
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------
// The Events page: #/events?type=&status=&window=&tenant=

async function renderEvents(query) {
  loading();
  const operator = isOperator();
  const chosen = {
    tenant: operator ? (query.has('tenant') ? query.get('tenant') : operatorFilter()) : '',
    type: query.get('type') || '',
    status: STATUS_WORDS[query.get('status')] ? query.get('status') : '',
    window: WINDOWS.some((w) => w.key === query.get('window')) ? query.get('window') : DEFAULT_WINDOW,
  };
  // An event's page links back to this list, filters and all.
  state.eventsHash = location.hash;
  const search = new URLSearchParams({ limit: '50' });
  if (chosen.tenant) search.set('tenant', chosen.tenant);
  if (chosen.type) search.set('type', chosen.type);
  if (chosen.status) search.set('status', chosen.status);
  const since = sinceOf(chosen.window);
  if (since) search.set('since', since);

  const rows = h('tbody');
  const note = h('div', { role: 'status', 'aria-live': 'polite' });
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  const table = h('table', { class: 'list', hidden: true },
    h('caption', { class: 'visually-hidden' }, 'Events, newest first'),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Event'),
      h('th', { scope: 'col' }, 'Type'),
      operator ? h('th', { scope: 'col' }, 'Tenant') : null,
      h('th', { scope: 'col' }, 'Status'),
      h('th', { scope: 'col' }, 'Occurred'))),
    rows);
  const tenants = new Set();
  let cursor = null;
  let shown = 0;

  /** Adds the next page (or pages, past empty ones) to the table. */
  async function load() {
    let page;
    let followed = 0;
    do {
      const pageQuery = new URLSearchParams(search);
      if (cursor) pageQuery.set('cursor', cursor);
      page = await api('GET', `/v1/events?${pageQuery}`);
      cursor = page.next_cursor || null;
      rows.append(...page.data.map((e) => eventRow(e, operator)));
      page.data.forEach((e) => tenants.add(e.tenant));
      shown += page.data.length;
      followed += 1;
    } while (page.data.length === 0 && cursor && followed < EMPTY_PAGES_FOLLOWED);
    table.hidden = shown === 0;
    more.hidden = !cursor;
    if (shown === 0 && !cursor) {
      note.replaceChildren(h('div', { class: 'empty' }, h('p', {}, h('strong', {}, 'No events match these filters.')),
        h('p', {}, chosen.window === 'all' ? 'Events appear here once a worker has handled them.' : 'Try a longer time, or fewer filters.')));
    } else if (shown === 0) {
      note.replaceChildren(h('p', { class: 'muted' }, 'None of the most recent events match. Load more looks further back.'));
    } else {
      note.replaceChildren();
    }
  }

  more.addEventListener('click', async () => {
    more.disabled = true;
    const before = rows.children.length;
    try {
      await load();
    } catch (e) {
      note.replaceChildren(h('p', { class: 'flash error', role: 'alert' }, e.message));
    }
    more.disabled = false;
    // The button goes once the list ends: focus moves on to the first event it added.
    const added = rows.children[before];
    if (more.hidden && added) added.querySelector('a').focus();
  });

  // The first page before the screen: no history at all is the router's to say.
  const [types] = await Promise.all([catalog(), load()]);
  show('Events',
    eventFilters(chosen, types, operator ? [...tenants].sort() : null),
    h('p', { class: 'muted' }, 'Failed: an endpoint\'s last attempt did not get a 2xx (it is retrying there, or gave up). Pending: an endpoint has not been tried yet.'),
    note, table, more);
}

function eventFilters(chosen, types, tenants) {
  const select = (id, options, value) => h('select', { id, name: id },
    options.map(([key, text]) => h('option', { value: key, selected: key === value }, text)));
  const tenant = tenants
    ? h('input', { id: 'events-tenant', name: 'tenant', value: chosen.tenant, list: 'events-tenant-list', placeholder: 'All tenants' })
    : null;
  const type = select('events-type', [['', 'All event types'], ...types.map((t) => [t, t])], chosen.type);
  const status = select('events-status', [['', 'Any status'], ...Object.entries(STATUS_WORDS)], chosen.status);
  const time = select('events-window', WINDOWS.map((w) => [w.key, w.label]), chosen.window);
  return h('form', {
    class: 'filter',
    role: 'search',
    onsubmit: (event) => {
      event.preventDefault();
      const query = new URLSearchParams();
      if (tenant) {
        // The same filter as the endpoint list's: one tenant at a time, across pages.
        sessionStorage.setItem(FILTER_KEY, tenant.value.trim());
        query.set('tenant', tenant.value.trim());
      }
      if (type.value) query.set('type', type.value);
      if (status.value) query.set('status', status.value);
      query.set('window', time.value);
      const next = `#/events?${query}`;
      // The same filters again still read the list again (no hashchange then).
      if (location.hash === next) route();
      else location.hash = next;
    },
  },
  tenant ? [h('label', { for: 'events-tenant' }, 'Tenant'), tenant,
    h('datalist', { id: 'events-tenant-list' }, tenants.map((t) => h('option', { value: t })))] : null,
  h('label', { for: 'events-type' }, 'Event type'), type,
  h('label', { for: 'events-status' }, 'Status'), status,
  h('label', { for: 'events-window' }, 'Time'), time,
  h('button', { type: 'submit' }, 'Show'));
}

function eventRow(e, operator) {
  return h('tr', {},
    h('td', { 'data-label': 'Event' }, h('a', { href: `#/events/${enc(e.id)}`, class: 'mono' }, e.id)),
    h('td', { 'data-label': 'Type' }, e.type),
    operator ? h('td', { 'data-label': 'Tenant' }, e.tenant) : null,
    h('td', { 'data-label': 'Status' }, statusBadge(e.status)),
    h('td', { 'data-label': 'Occurred' }, timeEl(e.occurred_at)));
}

// ---------------------------------------------------------------------------------------
// One event: #/events/<id>

async function renderEvent(id) {
  loading();
  const path = `/v1/events/${enc(id)}`;
  const [event, attempts] = await Promise.all([api('GET', path), api('GET', `${path}/attempts`)]);
  const endpoints = await endpointsOf(event.tenant);
  const status = h('dd', {}, statusBadge(event.status));
  const details = h('dl', { class: 'facts' },
    h('dt', {}, 'Event id'), h('dd', { class: 'mono' }, event.id),
    h('dt', {}, 'Type'), h('dd', {}, event.type),
    isOperator() ? [h('dt', {}, 'Tenant'), h('dd', {}, event.tenant)] : null,
    h('dt', {}, 'Status'), status,
    h('dt', {}, 'Occurred'), h('dd', {}, timeEl(event.occurred_at)),
    h('dt', {}, 'First handled'), h('dd', {}, timeEl(event.recorded_at)));
  const payload = event.payload === null || event.payload === undefined
    ? h('p', { class: 'muted' }, 'No longer kept: payloads are kept for a limited time.')
    : h('pre', { class: 'body payload', tabindex: '0', 'aria-labelledby': 'payload-title' }, JSON.stringify(event.payload, null, 2));
  const outcomes = event.endpoints.length
    ? event.endpoints.map((o) => outcomeSection(event, o,
      attempts.filter((a) => a.endpoint_id === o.endpoint_id),
      endpoints ? endpoints.get(o.endpoint_id) || false : null,
      (fresh) => status.replaceChildren(statusBadge(fresh.status))))
    : [h('p', { class: 'empty' }, 'This event was meant for no endpoint: none took its type when it was handled.')];

  show(`Event: ${event.type}`,
    h('p', {}, h('a', { href: state.eventsHash || '#/events' }, '← All events')),
    details,
    h('h2', { id: 'payload-title' }, 'Payload'), payload,
    h('h2', {}, 'Endpoints'),
    ...outcomes);
}

/** The tenant's endpoints by id, for their URLs; `null` when they cannot be read now. */
async function endpointsOf(tenant) {
  try {
    const list = await listEndpoints(isOperator() ? tenant : '');
    return new Map(list.map((e) => [e.id, e]));
  } catch (_) {
    return null;
  }
}

/**
 * One endpoint's part in an event (`part`: `{endpoint_id, status, attempts, …}`): where it
 * stands, every attempt there, and Resend. `endpoint` is its record, `false` when it no longer
 * exists, `null` when unknown. `onEvent` gets the event as read again after a resend.
 */
function outcomeSection(event, part, attempts, endpoint, onEvent) {
  const id = part.endpoint_id;
  const titleId = `outcome-${id}`;
  const name = endpoint
    ? h('a', { href: `#/endpoints/${enc(id)}`, class: 'url' }, endpoint.url)
    : h('span', { class: 'mono' }, id);
  const facts = h('dl', { class: 'facts' });
  const list = h('div', { class: 'attempts' });
  const note = h('div', { role: 'status', 'aria-live': 'polite' });
  let current = part;

  function draw(now, tried) {
    current = now;
    const code = now.last_status_code === null || now.last_status_code === undefined
      ? (now.attempts ? 'No answer' : 'None yet')
      : String(now.last_status_code);
    facts.replaceChildren(
      h('dt', {}, 'Status'), h('dd', {}, statusBadge(now.status)),
      h('dt', {}, 'Attempts'), h('dd', {}, String(now.attempts)),
      h('dt', {}, 'Last status code'), h('dd', {}, code),
      h('dt', {}, 'Last attempt'), h('dd', {}, now.last_attempt_at ? timeEl(now.last_attempt_at) : 'Not tried yet'));
    list.replaceChildren(...(tried.length ? tried.map(attemptItem) : [h('p', { class: 'muted' }, 'No attempts here yet.')]));
  }

  /** The event and this endpoint's attempts once it has more than `before`; else null. */
  async function reread(before) {
    const fresh = await api('GET', `/v1/events/${enc(event.id)}`);
    const now = fresh.endpoints.find((x) => x.endpoint_id === id);
    if (!now || now.attempts <= before) return null;
    const all = await api('GET', `/v1/events/${enc(event.id)}/attempts`);
    return { fresh, now, tried: all.filter((a) => a.endpoint_id === id) };
  }

  /** After a resend: reads the event every second until its attempt here is recorded. */
  async function follow(before) {
    for (let second = 0; second < FOLLOW_SECONDS && section.isConnected; second++) {
      await pause(1000);
      let found = null;
      try {
        found = await reread(before);
      } catch (_) {
        // A moment's failure to read: the next second tries again.
      }
      if (!found) continue;
      draw(found.now, found.tried);
      onEvent(found.fresh);
      const last = found.tried[found.tried.length - 1];
      note.replaceChildren(h('p', { class: `flash ${last && !last.error ? 'ok' : 'error'}` },
        last ? `Resend queued. ${outcome(last)}.` : 'Resend queued.'));
      return;
    }
    if (section.isConnected) {
      note.replaceChildren(h('p', { class: 'flash ok' }, 'Resend queued. Its delivery is not recorded yet: reload this page to see it.'));
    }
  }

  const resend = endpoint === false ? null : h('button', {
    type: 'button',
    'aria-label': `Resend to ${endpoint ? endpoint.url : id}`,
    onclick: async () => {
      resend.disabled = true;
      note.replaceChildren(h('p', { class: 'muted' }, 'Queuing…'));
      try {
        await api('POST', `/v1/events/${enc(event.id)}/resend`, { endpoint_id: id });
      } catch (e) {
        resend.disabled = false;
        note.replaceChildren(h('p', { class: 'flash error', role: 'alert' }, `Not resent: ${reason(e)}.`));
        return;
      }
      resend.disabled = false;
      note.replaceChildren(h('p', { class: 'flash ok' }, 'Resend queued.'));
      await follow(current.attempts);
    },
  }, 'Resend');

  const section = h('section', { class: 'outcome-card', 'aria-labelledby': titleId },
    h('h3', { id: titleId }, name),
    endpoint === false ? h('p', { class: 'muted' }, 'This endpoint no longer exists.') : null,
    facts,
    resend ? h('div', { class: 'actions' }, resend) : null,
    note,
    h('h4', {}, 'Attempts'),
    list);
  draw(part, attempts);
  return section;
}

// ---------------------------------------------------------------------------------------
// On an endpoint's page: its last 24 hours, and Recover

/** Fills `section` with the endpoint's statistics and Recover; leaves it hidden without a
 * history. */
async function loadHistory(ep, section) {
  if (state.history === false) return;
  let stats;
  try {
    stats = await api('GET', `/v1/endpoints/${enc(ep.id)}/stats`);
  } catch (e) {
    if (noHistory(e)) {
      state.history = false;
      return;
    }
    section.hidden = false;
    section.replaceChildren(h('h2', { id: 'history-title' }, 'Last 24 hours'),
      h('p', { class: 'flash error', role: 'alert' }, e.message));
    return;
  }
  state.history = true;
  section.hidden = false;
  section.replaceChildren(h('h2', { id: 'history-title' }, 'Last 24 hours'), ...statsChart(stats), ...recoverForm(ep));
}

/** "98.5% delivered over 24 h (1,204 attempts), p50 12 ms, p99 80 ms." */
function statsSummary(stats) {
  // Rounded down: one failure in 10,000 is 99.9%, not 100%.
  const share = Math.floor((stats.delivered / stats.attempts) * 1000) / 10;
  let text = `${share.toLocaleString(undefined, { maximumFractionDigits: 1 })}% delivered over 24 h (${plural(stats.attempts, 'attempt')})`;
  if (typeof stats.latency_p50_ms === 'number' && typeof stats.latency_p99_ms === 'number') {
    text += `, p50 ${stats.latency_p50_ms.toLocaleString()} ms, p99 ${stats.latency_p99_ms.toLocaleString()} ms`;
  }
  return `${text}.`;
}

/** The summary in words, and per hour a bar of delivered (below) and failed (above) attempts. */
function statsChart(stats) {
  if (!stats.attempts) {
    return [h('p', { id: 'stats-summary', class: 'muted' }, 'No deliveries in the last 24 hours.')];
  }
  const nodes = [h('p', { id: 'stats-summary' }, statsSummary(stats))];
  const failures = Object.entries(stats.failures || {}).filter(([, n]) => n > 0);
  if (failures.length) {
    nodes.push(h('p', { class: 'muted' }, 'Failed attempts: ',
      failures.map(([cls, n]) => `${n.toLocaleString()} ${FAILURE_WORDS[cls] || cls.replace(/_/g, ' ')}`).join(', '), '.'));
  }
  // One slot per hour, from the hour `since` falls in to this one (the API lists only hours
  // with attempts).
  const last = Math.floor(Date.now() / HOUR_MS);
  const sinceHour = Math.floor(Date.parse(stats.since) / HOUR_MS);
  const first = Number.isNaN(sinceHour) ? last - 23 : Math.max(Math.min(sinceHour, last), last - 24 * 7);
  const slots = Array.from({ length: last - first + 1 }, () => ({ delivered: 0, failed: 0 }));
  for (const hour of stats.hours || []) {
    const slot = slots[Math.floor(Date.parse(hour.hour) / HOUR_MS) - first];
    if (!slot) continue;
    slot.delivered += hour.delivered;
    slot.failed += hour.failed;
  }
  const most = Math.max(1, ...slots.map((s) => s.delivered + s.failed));
  const [width, height, top] = [10, 60, 56];
  const bars = slots.map((s, i) => {
    const ok = (s.delivered / most) * top;
    const bad = (s.failed / most) * top;
    const at = new Date((first + i) * HOUR_MS).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    return svg('g', {},
      svg('title', {}, `${at}: ${s.delivered.toLocaleString()} delivered, ${s.failed.toLocaleString()} failed`),
      s.delivered ? svg('rect', { class: 'ok', x: i * width + 1, y: height - ok, width: width - 2, height: ok }) : null,
      s.failed ? svg('rect', { class: 'bad', x: i * width + 1, y: height - ok - bad, width: width - 2, height: bad }) : null);
  });
  nodes.push(h('figure', { class: 'chart' },
    svg('svg', { viewBox: `0 0 ${slots.length * width} ${height}`, preserveAspectRatio: 'none', role: 'img', 'aria-labelledby': 'stats-summary' },
      svg('rect', { class: 'axis', x: 0, y: height - 0.5, width: slots.length * width, height: 0.5 }),
      bars),
    h('div', { class: 'chart-axis', 'aria-hidden': 'true' }, h('span', {}, '24 h ago'), h('span', {}, 'now')),
    h('figcaption', { class: 'muted' },
      h('span', { class: 'swatch ok', 'aria-hidden': 'true' }), ' Delivered ',
      h('span', { class: 'swatch bad', 'aria-hidden': 'true' }), ' Failed, per hour')));
  return nodes;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** `h` for SVG elements (which need their namespace); text children only as text. */
function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Recover: send the endpoint again what it did not get in a window, after asking. */
function recoverForm(ep) {
  const choice = h('select', { id: 'recover-since', name: 'since', 'aria-describedby': 'recover-help' },
    RECOVER_WINDOWS.map((w) => h('option', { value: w.key, selected: w.key === '24h' }, w.label)));
  const button = h('button', { type: 'submit' }, 'Recover');
  const result = h('div', { id: 'recover-result', role: 'status', 'aria-live': 'polite' });

  async function send(body) {
    button.disabled = true;
    result.replaceChildren(h('p', { class: 'muted' }, 'Recovering…'));
    try {
      const r = await api('POST', `/v1/endpoints/${enc(ep.id)}/recover`, body);
      const nodes = [h('p', { class: 'flash ok' }, recovered(r))];
      if (r.next_since) {
        nodes.push(h('p', {}, 'One recovery sends 10,000 events at most; more are left from ', timeEl(r.next_since), ' on. ',
          h('button', { type: 'button', onclick: () => send({ since: r.next_since, until: body.until }) }, 'Recover the rest')));
      }
      result.replaceChildren(...nodes);
    } catch (e) {
      result.replaceChildren(h('p', { class: 'flash error', role: 'alert' }, `Not recovered: ${reason(e)}.`));
    }
    button.disabled = false;
  }

  const form = h('form', {
    class: 'filter',
    onsubmit: async (event) => {
      event.preventDefault();
      const window = RECOVER_WINDOWS.find((w) => w.key === choice.value) || RECOVER_WINDOWS[1];
      const question = `Send ${ep.url} again every event of the ${window.label.toLowerCase()} that it did not get? Your server may receive some of them twice.`;
      if (!confirm(question)) return;
      // A fixed end, so that "Recover the rest" continues this same window.
      await send({ since: sinceOf(window.key), until: new Date().toISOString() });
    },
  },
  h('label', { for: 'recover-since' }, 'Recover from'), choice, button);

  return [
    h('h3', {}, 'Recover missed events'),
    h('p', { id: 'recover-help', class: 'muted' }, 'After an outage: sends this endpoint again every event of the chosen time whose last attempt here failed, or that was never tried here.'),
    form,
    result,
  ];
}

function recovered(r) {
  let text = r.queued
    ? `${plural(r.queued, 'event')} queued for delivery again.`
    : 'Nothing to recover: every event of that time reached this endpoint.';
  if (r.skipped) {
    text += ` ${plural(r.skipped, 'event')} skipped: the payload is no longer kept, or this endpoint no longer takes the type.`;
  }
  return text;
}
