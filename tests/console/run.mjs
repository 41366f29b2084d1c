// The web console in headless Chromium, as a customer and as an operator would use it.
// tests/console.rs sets up the fleet (API, worker, receiver, a dead letter) and runs this with:
//   CONSOLE_URL       the API's base URL
//   TENANT_TOKEN      a tenant token for "acme"
//   OPERATOR_TOKEN    the operator token
//   RECEIVER_OK       a receiver URL that answers 200
//   RECEIVER_FAIL     a receiver URL that answers 500 with a body
//   GLOBEX_ENDPOINT   the id of another tenant's endpoint
//   DEAD_ENDPOINT     the id of the endpoint whose delivery is in the dead-letter queue
//   SCREENSHOTS       where the screenshots go
//   CHROMIUM          the browser (default /usr/bin/chromium)
// This fleet keeps no message history (tests/console/history.mjs drives one that does).
// Every step waits on what the page shows (Playwright's auto-waiting), never on a timer.
// Any console error or uncaught exception in the page fails the run.
import assert from 'node:assert/strict';
import { env, openBrowser, step } from './browser.mjs';

const base = env('CONSOLE_URL');
const { browser, problems, newPage, shot, nextDialog } = await openBrowser({ base, shots: env('SCREENSHOTS') });

try {
  // ---------------------------------------------------------------- tenant mode
  const page = await newPage();
  step('opens with a tenant token, which leaves the address bar');
  await page.goto(`${base}/#token=${env('TENANT_TOKEN')}`);
  await page.getByRole('heading', { name: 'Webhook endpoints' }).waitFor();
  assert.ok(!page.url().includes('token'), `the token is still in ${page.url()}`);
  await page.getByText('No endpoints yet.').waitFor();
  await page.getByText('Account: acme').waitFor();
  await shot(page, '1-endpoints-empty');

  step('a link with another account\'s token asks first, and "no" keeps this account');
  const asked = nextDialog(page, false);
  await page.goto(`${base}/#token=${env('GLOBEX_TOKEN')}`);
  const question = await asked;
  assert.ok(question.includes('globex') && question.includes('acme'), question);
  await page.reload();
  await page.getByText('Account: acme').waitFor();
  assert.ok(!page.url().includes('token'), `the token is still in ${page.url()}`);

  step('keyboard only: Tab reaches "Add endpoint" and Enter opens the form');
  await page.locator('body').focus();
  let reached = false;
  for (let i = 0; i < 12 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement && document.activeElement.textContent === 'Add endpoint');
  }
  assert.ok(reached, 'Tab never reached "Add endpoint"');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Add an endpoint' }).waitFor();

  step('validation errors are shown per field');
  await page.getByLabel('Endpoint URL').fill('ftp://example.com/hooks');
  await page.getByRole('button', { name: 'Save configuration' }).click();
  await page.locator('#url-error').filter({ hasText: 'scheme' }).waitFor();
  await page.locator('#events-error').filter({ hasText: 'at least one' }).waitFor();
  assert.equal(await page.getByLabel('Endpoint URL').getAttribute('aria-invalid'), 'true');
  await page.getByText('Please correct these 2 fields').waitFor();
  await shot(page, '2-validation');

  step('creates an endpoint; its secret is shown once, with a copy button');
  await page.getByLabel('Endpoint URL').fill(env('RECEIVER_OK'));
  await page.getByLabel('log.blocked').check();
  await page.getByLabel('approval.approved').check();
  await page.getByLabel('Description (optional)').fill('Orders service');
  await page.getByRole('button', { name: 'Save configuration' }).click();
  await page.getByRole('heading', { name: 'Signing secret' }).waitFor();
  const secret = await page.getByLabel('Secret', { exact: true }).inputValue();
  assert.match(secret, /^whsec_/);
  await page.getByRole('button', { name: 'Copy' }).click();
  await page.getByText('Copied.').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
  await shot(page, '3-created-secret');
  const endpointUrl = page.url();

  step('Test Webhook: delivered, in plain words, and in the attempt log');
  await page.getByRole('button', { name: 'Test Webhook' }).click();
  await page.locator('#test-result').getByText(/Delivered in \d+ ms \(HTTP 200\)/).waitFor();
  await page.locator('details.attempt').first().getByText('webhook.test · attempt 1 (test)').waitFor();
  await shot(page, '4-test-delivered');

  step('the secret is not shown again');
  await page.reload();
  await page.getByRole('button', { name: 'Test Webhook' }).waitFor();
  assert.equal(await page.getByLabel('Secret', { exact: true }).count(), 0);

  step('delivery options: headers (one sensitive), a rate limit, a filter tried before saving');
  await page.getByRole('link', { name: 'Edit' }).click();
  await page.getByRole('heading', { name: 'Edit endpoint' }).waitFor();
  await page.getByLabel('Custom headers (optional)').fill('X-Team: red\nX-Api-Key: k-console-1');
  await page.getByLabel('Sensitive headers (optional)').fill('X-Api-Key');
  await page.getByLabel('Rate limit (optional)').fill('50');
  await page.getByLabel('Payload filter (optional)').fill('{"message": {"$startsWith": "This is a test"');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('#filter-error').filter({ hasText: 'not valid JSON' }).waitFor();
  await page.getByLabel('Payload filter (optional)').fill('{"message": {"$startsWith": "This is a test"}}');
  await page.getByLabel('Example data to try it on').fill('{"message": "hello"}');
  await page.getByRole('button', { name: 'Try filter' }).click();
  await page.locator('#filter-result').getByText('No match').waitFor();
  await page.getByLabel('Example data to try it on').fill('{"message": "This is a test event"}');
  await page.getByRole('button', { name: 'Try filter' }).click();
  await page.locator('#filter-result').getByText('Matches').waitFor();
  await shot(page, '4b-delivery-options');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByText('Changes saved.').waitFor();
  await page.getByText('x-api-key: ********').waitFor();
  await page.getByText('x-team: red').waitFor();
  await page.getByText('50 a second').waitFor();
  assert.equal(await page.getByText('k-console-1').count(), 0, 'a sensitive value is shown');

  step('make the receiver fail: the failure is explained with the body\'s first lines');
  await page.getByRole('link', { name: 'Edit' }).click();
  await page.getByRole('heading', { name: 'Edit endpoint' }).waitFor();
  await page.getByLabel('Endpoint URL').fill(env('RECEIVER_FAIL'));
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByText('Changes saved.').waitFor();
  await page.getByRole('button', { name: 'Test Webhook' }).click();
  await page.locator('#test-result').getByText('HTTP 500').waitFor();
  await page.locator('#test-result pre').getByText('upstream exploded').waitFor();

  step('attempt log: failed only, details of an attempt');
  await page.getByLabel('Failed only').check();
  assert.equal(await page.locator('details.attempt').count(), 1);
  const failed = page.locator('details.attempt').first();
  await failed.locator('summary').click();
  await failed.getByText('upstream exploded').waitFor();
  await failed.getByText('500', { exact: true }).waitFor();
  await shot(page, '5-test-failed-attempts');
  await page.getByLabel('Failed only').uncheck();
  assert.equal(await page.locator('details.attempt').count(), 2);
  await page.getByLabel('Event type').selectOption('webhook.test');
  assert.equal(await page.locator('details.attempt').count(), 2);

  step('rotates the secret: the new one is shown once');
  await page.getByRole('button', { name: 'Rotate secret' }).click();
  await page.getByRole('heading', { name: 'New signing secret' }).waitFor();
  const rotated = await page.getByLabel('Secret', { exact: true }).inputValue();
  assert.match(rotated, /^whsec_/);
  assert.notEqual(rotated, secret);
  await page.getByText('The previous secret also signs until').waitFor();
  await shot(page, '6-rotated');

  step('switches to Ed25519: a new key, shown once, and the public key to verify with');
  await page.getByRole('link', { name: 'Edit' }).click();
  await page.getByLabel('Signature').selectOption('ed25519');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByRole('heading', { name: 'New signing secret' }).waitFor();
  assert.match(await page.getByLabel('Secret', { exact: true }).inputValue(), /^whsk_/);
  await page.locator('code.key').filter({ hasText: /^whpk_/ }).waitFor();
  await shot(page, '6b-ed25519');

  step('disables the endpoint');
  await page.getByRole('button', { name: 'Disable' }).click();
  await page.getByText('Endpoint disabled').waitFor();
  await page.getByRole('button', { name: 'Enable' }).waitFor();
  await page.getByRole('link', { name: '← All endpoints' }).click();
  await page.getByRole('cell', { name: 'Disabled' }).waitFor();
  await page.getByText('answered HTTP 500').first().waitFor();
  await shot(page, '7-endpoints-list');

  step('another tenant\'s endpoint is not found, and not listed');
  assert.equal(await page.locator('table.list tbody tr').count(), 1);
  await page.goto(`${base}/#/endpoints/${env('GLOBEX_ENDPOINT')}`);
  await page.getByText('Not found: this endpoint does not exist, or it is not yours.').waitFor();
  await page.goto(`${base}/#/dead-letters`);
  await page.getByText('Not found').first().waitFor();

  step('without a message history, the Events page says so');
  await page.getByRole('link', { name: 'Events', exact: true }).click();
  await page.getByText('No event history here.').waitFor();
  await shot(page, '11-no-history');

  step('phone width');
  const phone = await newPage({ width: 390, height: 844 });
  await phone.goto(`${base}/#token=${env('TENANT_TOKEN')}`);
  await phone.getByRole('heading', { name: 'Webhook endpoints' }).waitFor();
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than a phone`);
  await shot(phone, '8-phone');
  await phone.goto(endpointUrl);
  await phone.getByRole('button', { name: 'Test Webhook' }).waitFor();
  await shot(phone, '9-phone-endpoint');

  // ---------------------------------------------------------------- operator mode
  step('operator: a wrong token is refused, the right one signs in');
  const op = await newPage();
  await op.goto(`${base}/`);
  await op.getByRole('heading', { name: 'Sign in' }).waitFor();
  await op.getByLabel('Operator token').fill('not-the-token-0000000000');
  await op.getByRole('button', { name: 'Sign in' }).click();
  await op.getByText('That token is not valid.').waitFor();
  await op.getByLabel('Operator token').fill(env('OPERATOR_TOKEN'));
  await op.getByRole('button', { name: 'Sign in' }).click();
  await op.getByRole('heading', { name: 'Webhook endpoints' }).waitFor();
  await op.getByRole('columnheader', { name: 'Tenant' }).waitFor();

  step('operator: the tenant filter');
  await op.getByLabel('Tenant', { exact: true }).fill('acme');
  await op.getByRole('button', { name: 'Show' }).click();
  await op.locator('table.list tbody tr').first().waitFor();
  assert.equal(await op.locator('table.list tbody tr').count(), 1);

  step('operator: an ordered endpoint, and its backlog on its page');
  await op.goto(`${base}/#/new`);
  await op.getByLabel('Tenant', { exact: true }).fill('initech');
  await op.getByLabel('Endpoint URL').fill(env('RECEIVER_OK'));
  await op.getByLabel('log.blocked').check();
  await op.getByLabel('Deliver in order').check();
  await op.getByRole('button', { name: 'Save configuration' }).click();
  await op.getByRole('heading', { name: 'Signing secret' }).waitFor();
  await op.getByText('In publish order, one at a time. Waiting: 0.').waitFor();
  await op.getByRole('link', { name: 'Edit' }).click();
  assert.ok(await op.getByLabel('Deliver in order').isDisabled(), 'ordered can be changed');
  await shot(op, '9b-ordered');

  step('operator: replays a dead letter');
  await op.getByRole('link', { name: 'Dead letters' }).click();
  await op.getByRole('heading', { name: 'Dead letters' }).waitFor();
  await op.getByRole('cell', { name: env('DEAD_ENDPOINT'), exact: true }).waitFor();
  await shot(op, '10-dead-letters');
  await op.getByRole('button', { name: `Replay the dead letters of ${env('DEAD_ENDPOINT')}` }).click();
  await op.getByText('Replayed 1 dead letter.').waitFor();
  await op.getByText('No dead letters.').waitFor();

  step('operator: signs out');
  await op.getByRole('button', { name: 'Sign out' }).click();
  await op.getByRole('heading', { name: 'Sign in' }).waitFor();
} finally {
  await browser.close();
}

assert.deepEqual(problems, [], `the page logged errors:\n${problems.join('\n')}`);
console.log('console: every step passed');
