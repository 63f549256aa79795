// What the console's browser scripts share: Chromium launched the way the tests require,
// waiting helpers (each waits for what the page shows, never for a fixed time), screenshots
// into the artifacts folder, and a runner that screenshots the page a failing step was on.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

/// The `--name=value` options of a script: `required` must be given; `--timeout-ms` (default
/// 60000: a loaded 2-core CI machine only makes a step slower) bounds every wait. Exits 2
/// naming a missing option.
export function options(required) {
  const spec = { 'timeout-ms': { type: 'string', default: '60000' } };
  for (const k of required) spec[k] = { type: 'string' };
  const { values } = parseArgs({ options: spec });
  for (const k of required) {
    if (values[k] === undefined) {
      console.error(`${process.argv[1]}: --${k} is required`);
      process.exit(2);
    }
  }
  return values;
}

/// Prints the step being done, so a failure shows how far the script got.
export function step(text) {
  console.log(`step: ${text}`);
}

/// Throws `what` unless `ok`.
export function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

/// Runs `steps(page, helpers)` in a fresh headless Chromium page (1000x700, downloads on);
/// on an error prints it and saves `failure.png` of the page it happened on. Exits 0 when
/// every step passed, 1 otherwise.
export async function run({ artifacts, timeout }, steps) {
  mkdirSync(artifacts, { recursive: true });
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  // About 1000 px wide: the README's screenshot is taken at this size.
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  page.setDefaultNavigationTimeout(timeout);
  const helpers = waiting(page, artifacts, timeout);
  let failed = false;
  try {
    await steps(page, helpers);
  } catch (e) {
    failed = true;
    console.error(`${process.argv[1]}: ${e.stack ?? e}`);
    console.error(`at ${page.url()}; screenshot in ${join(artifacts, 'failure.png')}`);
    await helpers.shot('failure').catch((err) => console.error(`no failure screenshot: ${err}`));
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
}

/// The helpers of one page.
function waiting(page, artifacts, timeout) {
  return {
    /// Calls `probe(saw)` until it returns a value other than undefined, at most `timeout`
    /// ms, with a short pause between tries (the interval of a poll, not a wait for the
    /// clock: each try checks the thing itself); throws naming `what` and the last value
    /// passed to `saw`.
    async poll(what, probe) {
      const deadline = Date.now() + timeout;
      let last;
      for (;;) {
        const got = await probe((seen) => { last = seen; });
        if (got !== undefined) return got;
        if (Date.now() > deadline) throw new Error(`gave up after ${timeout} ms waiting for ${what} (last seen: ${JSON.stringify(last)})`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    },

    /// A locator's text, trimmed.
    async text(locator) {
      return (await locator.innerText({ timeout })).trim();
    },

    /// Waits until the element of `selector` shows exactly `want` (across the page's own
    /// refreshes and navigations).
    async waitText(selector, want) {
      const exact = new RegExp(`^\\s*${want.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`);
      await page.locator(selector, { hasText: exact }).first().waitFor({ timeout });
    },

    /// Saves a screenshot as `name`.png in the artifacts folder: the whole page, or only its
    /// first screen when `fullPage` is false (a table page of long rows).
    async shot(name, fullPage = true) {
      await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage });
    },
  };
}
