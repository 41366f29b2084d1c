// Endpoint controls in the console (docs/contract.md §2): custom and sensitive headers, the
// rate limit, the in-flight cap, the payload filter (with a Try button that asks the API, so the
// console never judges a filter differently from the workers) and the signature scheme.
//
// Loaded before app.js, whose helpers (h, api) these call when they run; app.js's form calls
// controlFields, its endpoint page controlFacts.
'use strict';

/** `Name: value` lines as an object; a line without a colon is reported, not dropped. */
function parseHeaderLines(text) {
  const headers = {};
  for (const line of text.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`"${line}" is not Name: value`);
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/** A number field's value: a whole number, or null when empty. */
function wholeNumber(input) {
  const text = input.value.trim();
  if (text === '') return null;
  if (!/^\d+$/.test(text)) throw new Error('a whole number');
  return Number(text);
}

/**
 * The controls of the endpoint form: `field(name, control, help)` lays one out (app.js's),
 * `ep` is the endpoint being edited (null for a new one). Returns the nodes and `read()`, which
 * gives the request's fields or throws `{field, message}` for the first it cannot read.
 */
function controlFields(field, ep) {
  const headerText = ep && ep.headers ? Object.entries(ep.headers).map(([n, v]) => `${n}: ${v}`).join('\n') : '';
  const headers = h('textarea', { id: 'headers', name: 'headers', rows: 3, spellcheck: 'false', placeholder: 'X-Api-Key: your-key', 'data-label': 'Custom headers (optional)' }, headerText);
  const sensitive = h('input', { id: 'sensitive_headers', name: 'sensitive_headers', value: ep && ep.sensitive_headers ? ep.sensitive_headers.join(', ') : '', placeholder: 'X-Api-Key', 'data-label': 'Sensitive headers (optional)' });
  const rate = h('input', { id: 'rate_limit', name: 'rate_limit', type: 'number', min: 1, max: 10000, inputmode: 'numeric', value: ep && ep.rate_limit ? ep.rate_limit : '', 'data-label': 'Rate limit (optional)' });
  const inFlight = h('input', { id: 'max_in_flight', name: 'max_in_flight', type: 'number', min: 1, inputmode: 'numeric', value: ep && ep.max_in_flight ? ep.max_in_flight : '', 'data-label': 'Requests at once (optional)' });
  const filter = h('textarea', { id: 'filter', name: 'filter', rows: 4, spellcheck: 'false', placeholder: '{"severity": {"$in": ["high", "critical"]}}', 'data-label': 'Payload filter (optional)' }, ep && ep.filter ? JSON.stringify(ep.filter, null, 2) : '');
  const example = h('textarea', { id: 'filter_example', rows: 3, spellcheck: 'false', 'data-label': 'Example data to try it on' }, '{"severity": "critical"}');
  const verdict = h('p', { id: 'filter-result', role: 'status' });
  const tryIt = h('button', {
    type: 'button',
    onclick: async () => {
      verdict.textContent = '';
      try {
        const trial = { filter: JSON.parse(filter.value || '{}'), data: JSON.parse(example.value || 'null') };
        const answer = await api('POST', '/v1/filters/test', trial);
        verdict.textContent = answer.matches ? 'Matches: this event would be sent.' : 'No match: this event would not be sent.';
      } catch (e) {
        verdict.textContent = e instanceof SyntaxError ? `Not valid JSON: ${e.message}` : e.message;
      }
    },
  }, 'Try filter');
  // Fixed once the endpoint exists (docs/ordered.md): shown, not changed, on an edit.
  const ordered = h('input', { id: 'ordered', name: 'ordered', type: 'checkbox', checked: Boolean(ep && ep.ordered), disabled: Boolean(ep), 'data-label': 'Deliver in order' });
  const signature = h('select', { id: 'signature', name: 'signature', 'data-label': 'Signature' },
    h('option', { value: 'hmac-sha256', selected: !ep || ep.signature !== 'ed25519' }, 'HMAC-SHA256, a shared secret (Standard Webhooks v1)'),
    h('option', { value: 'ed25519', selected: ep && ep.signature === 'ed25519' }, 'Ed25519, a public key (Standard Webhooks v1a)'));

  const nodes = h('fieldset', { class: 'controls' },
    h('legend', {}, 'Delivery options'),
    field('headers', headers, 'Sent with every delivery, one per line as Name: value.'),
    field('sensitive_headers', sensitive, 'Names from above whose values are hidden once saved, separated by commas.'),
    field('rate_limit', rate, 'Deliveries a second at most, across all workers; more wait their turn.'),
    field('max_in_flight', inFlight, 'Requests in flight at once, per worker.'),
    field('filter', filter, 'Only events whose data matches are sent. Operators: $eq $ne $in $nin $gt $gte $lt $lte $exists $startsWith $and $or $not.'),
    field('filter_example', example),
    h('div', { class: 'actions' }, tryIt), verdict,
    field('ordered', ordered, ep ? 'Set when the endpoint was created.' : 'One at a time, in the order they happened; a failed one holds back the rest until it is delivered or given up. Cannot be changed later.'),
    field('signature', signature, ep ? 'Changing it makes a new secret; the old one keeps signing for 24 hours.' : 'How your server verifies each webhook.'));

  /** The controls as request fields; on an edit, an emptied one is removed (null). */
  function read() {
    const body = {};
    const cleared = ep ? null : undefined;
    const take = (name, fn) => {
      try {
        const value = fn();
        if (value !== undefined) body[name] = value;
      } catch (e) {
        throw { field: name, message: e instanceof SyntaxError ? `not valid JSON: ${e.message}` : e.message };
      }
    };
    take('headers', () => (headers.value.trim() ? parseHeaderLines(headers.value) : cleared));
    const names = sensitive.value.split(',').map((n) => n.trim()).filter(Boolean);
    take('sensitive_headers', () => (names.length ? names : cleared));
    take('rate_limit', () => wholeNumber(rate) ?? cleared);
    take('max_in_flight', () => wholeNumber(inFlight) ?? cleared);
    take('filter', () => (filter.value.trim() ? JSON.parse(filter.value) : cleared));
    if (!ep && ordered.checked) body.ordered = true;
    if (!ep || signature.value !== ep.signature) body.signature = signature.value;
    return body;
  }
  return { nodes, read };
}

/** The endpoint page's facts about its controls (only those set), as dt/dd pairs. */
function controlFacts(ep) {
  const facts = [h('dt', {}, 'Signature'), h('dd', {},
    ep.signature === 'ed25519' ? 'Ed25519 (Standard Webhooks v1a). Verify with the public key:' : 'HMAC-SHA256 (Standard Webhooks v1)',
    ep.public_key ? h('code', { class: 'block key' }, ep.public_key) : null)];
  if (ep.headers) {
    facts.push(h('dt', {}, 'Custom headers'), h('dd', {},
      h('ul', { class: 'plain' }, Object.entries(ep.headers).map(([n, v]) => h('li', {}, h('code', {}, `${n}: ${v}`))))));
  }
  if (ep.rate_limit) facts.push(h('dt', {}, 'Rate limit'), h('dd', {}, `${ep.rate_limit} a second`));
  if (ep.max_in_flight) facts.push(h('dt', {}, 'Requests at once'), h('dd', {}, `${ep.max_in_flight} per worker`));
  if (ep.filter) facts.push(h('dt', {}, 'Payload filter'), h('dd', {}, h('pre', {}, JSON.stringify(ep.filter, null, 2))));
  if (ep.ordered) {
    const backlog = ep.ordered_backlog || { length: 0 };
    const next = backlog.next_attempt_at ? `; the first is next tried at ${new Date(backlog.next_attempt_at).toLocaleString()}` : '';
    facts.push(h('dt', {}, 'Order'), h('dd', { id: 'ordered-backlog' },
      `In publish order, one at a time. Waiting: ${backlog.length}${next}.`));
  }
  return facts;
}
