// What the console's browser scripts share (run.mjs, history.mjs): headless Chromium through
// Playwright, pages that record every console error and uncaught exception, and screenshots
// that first check no missing value shows.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import assert from 'node:assert/strict';

/** An environment variable the Rust test sets; missing is a mistake in the test. */
export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

export const step = (name) => console.log(`- ${name}`);

/**
 * Chromium (CHROMIUM, default /usr/bin/chromium) for the console at `base`; screenshots go to
 * `shots`, each name after `prefix`. `problems` collects what the pages logged as errors.
 */
export async function openBrowser({ base, shots, prefix = '' }) {
  mkdirSync(shots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu'],
  });
  const problems = [];

  async function newPage(viewport = { width: 1280, height: 860 }) {
    const context = await browser.newContext({ viewport });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    page.on('console', (m) => {
      // Chromium reports every 4xx answer as a console error; the ones the steps provoke on
      // purpose (a wrong token, validation, another tenant's endpoint, no history) are not
      // the page's.
      const expected = /^Failed to load resource: the server responded with a status of (401|404|422)/;
      if (m.type() === 'error' && !expected.test(m.text())) problems.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    // Dialogs are accepted, unless a step answers the next one itself.
    page.on('dialog', (d) => (page.answerDialog ? page.answerDialog(d) : d.accept()));
    return page;
  }

  /** Saves a screenshot, after checking that no missing value shows as "null" or "undefined". */
  async function shot(page, name) {
    const text = await page.locator('body').innerText();
    assert.ok(!/\b(null|undefined|NaN)\b/.test(text), `${name}: a missing value shows:\n${text}`);
    await page.screenshot({ path: `${shots}/${prefix}${name}.png`, fullPage: true });
  }

  /** The next dialog's message; the dialog is accepted, or dismissed with `accept` false. */
  function nextDialog(page, accept = true) {
    return new Promise((resolve) => {
      page.answerDialog = (d) => {
        page.answerDialog = null;
        resolve(d.message());
        return accept ? d.accept() : d.dismiss();
      };
    });
  }

  return { browser, problems, newPage, shot, nextDialog };
}
