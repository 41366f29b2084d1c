// The message history in the console, in headless Chromium: a customer finds a failed event,
// reads its payload and attempts, resends it, then recovers what the endpoint missed; an
// operator filters the events by tenant. tests/console.rs sets up a fleet with a history
// (three events of "acme": one delivered, two that failed every attempt at one endpoint)
// and runs this with:
//   CONSOLE_URL       the API's base URL
//   TENANT_TOKEN      a tenant token for "acme"
//   OPERATOR_TOKEN    the operator token
//   DELIVERED_EVENT   the event delivered everywhere (the oldest)
//   RESENT_EVENT      a failed event, which the customer resends
//   RECOVERED_EVENT   the other failed event (the newest), which Recover sends again
//   FLAKY_URL         the URL of the endpoint where both failed
//   SCREENSHOTS       where the screenshots go (named history-*)
//   CHROMIUM          the browser (default /usr/bin/chromium)
// Every step waits on what the page shows (Playwright's auto-waiting), never on a timer.
// Any console error or uncaught exception in the page fails the run.
import assert from 'node:assert/strict';
import { env, openBrowser, step } from './browser.mjs';

const base = env('CONSOLE_URL');
const [delivered, resent, recovered] = ['DELIVERED_EVENT', 'RESENT_EVENT', 'RECOVERED_EVENT'].map(env);
const flakyUrl = env('FLAKY_URL');
const { browser, problems, newPage, shot, nextDialog } = await openBrowser({ base, shots: env('SCREENSHOTS'), prefix: 'history-' });

/** Waits until the events table lists exactly these ids, in this order. */
async function listed(page, ids) {
  await page.waitForFunction((want) => {
    const got = [...document.querySelectorAll('table.list:not([hidden]) tbody tr a')].map((a) => a.textContent);
    return JSON.stringify(got) === JSON.stringify(want);
  }, ids);
}

try {
  // ---------------------------------------------------------------- tenant mode
  const page = await newPage();
  step('Events: the account\'s events, newest first');
  await page.goto(`${base}/#token=${env('TENANT_TOKEN')}`);
  await page.getByRole('heading', { name: 'Webhook endpoints' }).waitFor();
  await page.getByRole('link', { name: 'Events', exact: true }).click();
  await page.getByRole('heading', { name: 'Events' }).waitFor();
  await listed(page, [recovered, resent, delivered]);
  assert.equal(await page.getByRole('button', { name: 'Load more' }).isVisible(), false, 'one page only');
  await shot(page, '1-events');

  step('filters: by type; then failed ones of the last hour');
  await page.getByLabel('Event type').selectOption('log.failed');
  await page.getByRole('button', { name: 'Show' }).click();
  await listed(page, [delivered]);
  await page.getByLabel('Event type').selectOption('');
  await page.getByLabel('Status').selectOption('failed');
  await page.getByLabel('Time').selectOption('1h');
  await page.getByRole('button', { name: 'Show' }).click();
  await listed(page, [recovered, resent]);
  assert.equal(await page.locator('table.list tbody .badge', { hasText: 'Failed' }).count(), 2);
  await shot(page, '2-events-failed');

  step('a failed event: its payload, and each endpoint\'s outcome and attempts');
  await page.getByRole('link', { name: resent }).click();
  await page.getByRole('heading', { name: 'Event: log.blocked' }).waitFor();
  await page.locator('pre.payload', { hasText: '"order": 2' }).waitFor();
  const flaky = page.locator('section.outcome-card', { has: page.getByRole('link', { name: flakyUrl, exact: true }) });
  const flakyFacts = flaky.locator(':scope > dl.facts');
  await flakyFacts.getByText('Failed', { exact: true }).waitFor();
  await flakyFacts.getByText('500', { exact: true }).waitFor();
  assert.equal(await flaky.locator('details.attempt.failed').count(), 4);
  const attempt = flaky.locator('details.attempt').first();
  await attempt.locator('summary').click();
  await attempt.getByText('upstream exploded').waitFor();
  const other = page.locator('section.outcome-card').filter({ hasNot: page.getByRole('link', { name: flakyUrl, exact: true }) });
  assert.equal(await other.locator('details.attempt.delivered').count(), 1);
  await shot(page, '3-event');

  step('Resend, from the keyboard: queued, then its delivery shows');
  await page.getByRole('button', { name: `Resend to ${flakyUrl}` }).focus();
  await page.keyboard.press('Enter');
  await flaky.getByText('Resend queued.').waitFor();
  await flaky.locator('details.attempt.delivered').waitFor({ timeout: 30_000 });
  await flakyFacts.getByText('Delivered', { exact: true }).waitFor();
  await flaky.getByText(/^Resend queued\. Delivered: HTTP 200/).waitFor();
  await shot(page, '4-resent');

  step('the endpoint page: its last 24 hours in words and as a chart');
  await flaky.getByRole('link', { name: flakyUrl, exact: true }).click();
  await page.getByRole('heading', { name: 'Last 24 hours' }).waitFor();
  const summary = await page.locator('#stats-summary').innerText();
  // 8 failed attempts and the resend's success.
  assert.match(summary, /^11\.1% delivered over 24 h \(9 attempts\), p50 \d+ ms, p99 \d+ ms\.$/);
  await page.getByRole('img', { name: summary }).waitFor();
  assert.ok(await page.locator('figure.chart rect.bad').count() >= 1, 'no failed bar');
  await page.getByText('Failed attempts: 8 answered with an error status.').waitFor();
  await shot(page, '5-endpoint');

  step('Recover asks first, then says what it queued');
  await page.getByLabel('Recover from').selectOption('1h');
  const question = nextDialog(page);
  await page.getByRole('button', { name: 'Recover', exact: true }).click();
  const asked = await question;
  assert.ok(asked.includes(flakyUrl) && asked.includes('last hour'), asked);
  await page.locator('#recover-result').getByText('1 event queued for delivery again.').waitFor();
  await shot(page, '6-recovered');

  step('phone width: the events and an event fit');
  const phone = await newPage({ width: 390, height: 844 });
  await phone.goto(`${base}/#token=${env('TENANT_TOKEN')}`);
  await phone.getByRole('heading', { name: 'Webhook endpoints' }).waitFor();
  for (const [hash, ready] of [['#/events', 'Events'], [`#/events/${resent}`, 'Event: log.blocked']]) {
    await phone.goto(`${base}/${hash}`);
    await phone.getByRole('heading', { name: ready }).waitFor();
    await phone.locator('main:not([aria-busy])').waitFor();
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${hash} is ${overflow}px wider than a phone`);
  }
  await shot(phone, '7-phone-event');

  // ---------------------------------------------------------------- operator mode
  step('operator: the events of one tenant');
  const op = await newPage();
  await op.goto(`${base}/`);
  await op.getByLabel('Operator token').fill(env('OPERATOR_TOKEN'));
  await op.getByRole('button', { name: 'Sign in' }).click();
  await op.getByRole('heading', { name: 'Webhook endpoints' }).waitFor();
  await op.getByRole('link', { name: 'Events', exact: true }).click();
  await op.getByRole('heading', { name: 'Events' }).waitFor();
  await op.getByLabel('Tenant', { exact: true }).fill('globex');
  await op.getByRole('button', { name: 'Show' }).click();
  await op.getByText('No events match these filters.').waitFor();
  await op.getByLabel('Tenant', { exact: true }).fill('acme');
  await op.getByRole('button', { name: 'Show' }).click();
  await listed(op, [recovered, resent, delivered]);
  await op.getByRole('columnheader', { name: 'Tenant' }).waitFor();
  await shot(op, '8-operator-events');
} finally {
  await browser.close();
}

assert.deepEqual(problems, [], `the page logged errors:\n${problems.join('\n')}`);
console.log('console history: every step passed');
