// The console, end to end in a real Chromium (issue 17.3). host/tests/console_browser.rs
// starts the ASA simulator and `flowhost serve` with `console: true`, then runs this script
// with the listener's base URL, an artifacts folder and what to expect; it exits 0 when every
// step passed, 1 (after a screenshot of the page it failed on) otherwise.
//
// Each step waits for what the page shows (Playwright's auto-waiting locators, or a poll with
// a deadline where a page only changes on reload), never for a fixed time. Only the selectors
// of the console's DOM contract (COMMON17.md, docs/console.md) are used.
//
//   node console.mjs --base http://127.0.0.1:PORT --artifacts DIR --events N \
//     --event-id ID --csv-header 'id,timestamp,...' \
//     --fail-flow U02 --fail-input '{"searchCount": 5000}' --error-contains 'searchCount must'
//
// The last line of stdout is a JSON object for the Rust side: the ids of the failed run and
// of the console's U03 run, and the path of the downloaded CSV.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { check, options, run, step } from './lib.mjs';

const opt = options(['base', 'artifacts', 'events', 'event-id', 'csv-header', 'fail-flow', 'fail-input', 'error-contains']);
const base = opt.base.replace(/\/+$/, '');
const events = Number(opt.events);
const timeout = Number(opt['timeout-ms']);

/// The number of records of a CSV text (RFC 4180: a quoted field may hold commas, quotes and
/// line breaks), the header included.
function csvRecords(csv) {
  let records = 0;
  let quoted = false;
  let pending = false;
  for (let i = 0; i < csv.length; i++) {
    const c = csv[i];
    if (quoted) {
      if (c === '"') quoted = false; // `""` inside a field reopens at the next quote
    } else if (c === '"') {
      quoted = true;
      pending = true;
    } else if (c === '\n') {
      records += 1;
      pending = false;
    } else if (c !== '\r') {
      pending = true;
    }
  }
  return records + (pending ? 1 : 0);
}

await run({ artifacts: opt.artifacts, timeout }, async (page, { poll, text, waitText, shot }) => {
  /// Submits the run form of `/flows/FLOW` with `input` and returns the id of the run page it
  /// lands on.
  async function runFromForm(flow, input) {
    await page.goto(`${base}/flows/${encodeURIComponent(flow)}`);
    const field = page.locator('form#run textarea[name="input"]');
    check((await field.inputValue({ timeout })).trim() === '{}', `the run form of ${flow} is prefilled with {}`);
    await field.fill(input);
    await page.locator('form#run button[type="submit"]').click();
    await page.waitForURL(/\/runs\/\d+$/, { timeout });
    const id = Number(new URL(page.url()).pathname.split('/').pop());
    await waitText('#run-flow', flow);
    return id;
  }

  // a) M10 is off on a fresh install; the flows page switches it on.
  step('a) / shows M10 off, enable switches it on');
  await page.goto(`${base}/`);
  const m10 = 'table#flows tr[data-flow="M10"]';
  await waitText(`${m10} td.state`, 'off');
  check((await text(page.locator(`${m10} td.title`))).length > 0, 'M10 has a title');
  await shot('flows-m10-off');
  await page.locator(`${m10} button[data-action="enable"]`).click();
  await waitText(`${m10} td.state`, 'on');
  await page.locator(`${m10} button[data-action="disable"]`).waitFor();
  await shot('flows-m10-on');

  // b) Serve runs M10 on its schedule: the Audit Events rows appear (a table page changes
  // only when loaded again).
  step(`b) /tables/Audit Events reaches ${events} rows`);
  await page.goto(`${base}/tables`);
  await page.locator('table#tables a.table', { hasText: 'Audit Events' }).first().click();
  await page.waitForURL(/\/tables\/Audit(%20| )Events/);
  await poll(`#row-count to read ${events}`, async (saw) => {
    const n = await text(page.locator('#row-count'));
    saw(n);
    if (Number(n) === events) return n;
    await page.reload();
    return undefined;
  });
  const shown = await page.locator('table#rows tr.row').count();
  check(shown > 0 && shown <= events, `the first page shows some of the ${events} rows (shows ${shown})`);
  await shot('table-audit-events', false);

  // The rows page by page: the next page shows other rows, and the previous one comes back.
  step('b) a#next and a#prev page through the rows');
  const firstRow = await text(page.locator('table#rows tr.row').first());
  await page.locator('a#next').click();
  await page.waitForURL(/[?&]page=2(&|$)/);
  const nextRow = await text(page.locator('table#rows tr.row').first());
  check(nextRow !== firstRow, 'the next page starts with another row');
  await page.locator('a#prev').click();
  await page.waitForURL((url) => !/[?&]page=2(&|$)/.test(url.search));
  check((await text(page.locator('table#rows tr.row').first())) === firstRow, 'the previous page is the first again');

  // A search on one column finds the one event with that id.
  step('b) a search on column id finds one row');
  await page.locator('form#search select[name="column"]').selectOption('id');
  await page.locator('form#search input[name="q"]').fill(opt['event-id']);
  await page.locator('form#search input[name="q"]').press('Enter');
  await waitText('#row-count', '1');
  check((await page.locator('table#rows tr.row').count()) === 1, 'the search shows one row');
  check((await text(page.locator('table#rows tr.row'))).includes(opt['event-id']), 'the row found has the id searched for');
  await shot('table-search');

  // e) The whole table as CSV through the page's link.
  step('e) a#csv downloads the table as CSV');
  await page.goto(`${base}/tables/${encodeURIComponent('Audit Events')}`);
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('a#csv').click()]);
  check(download.suggestedFilename() === 'Audit Events.csv', `the download is named "Audit Events.csv" (is "${download.suggestedFilename()}")`);
  const csvPath = join(opt.artifacts, 'Audit Events.csv');
  await download.saveAs(csvPath);
  const csv = readFileSync(csvPath, 'utf8');
  const header = csv.split(/\r?\n/, 1)[0];
  check(header === opt['csv-header'], `the CSV header is ${opt['csv-header']} (is ${header})`);
  const rows = csvRecords(csv) - 1;
  check(rows === events, `the CSV has ${events} rows (has ${rows})`);

  // c) A run that fails, found through the run list's status filter.
  step(`c) ${opt['fail-flow']} with a bad input fails; /runs?status=error opens it`);
  const failedRun = await runFromForm(opt['fail-flow'], opt['fail-input']);
  await waitText('#run-status', 'error');
  await page.goto(`${base}/runs?status=error`);
  await page.locator('form#filter select[name="status"]').waitFor();
  const listed = page.locator('table#runs tr[data-run]');
  const statuses = await listed.evaluateAll((rows) => rows.map((r) => r.dataset.status));
  check(statuses.length > 0 && statuses.every((s) => s === 'error'), `only failed runs are listed (${statuses})`);
  await shot('runs-error');
  await page.locator(`table#runs tr[data-run="${failedRun}"] a.run`).click();
  await page.waitForURL(new RegExp(`/runs/${failedRun}$`));
  await waitText('#run-status', 'error');
  const error = await text(page.locator('pre#run-error'));
  check(error.includes(opt['error-contains']), `the run's error contains "${opt['error-contains']}" (is "${error}")`);
  check((await text(page.locator('#run-trigger'))) === 'console', 'the failed run was started by the console');
  await shot('run-error');

  // d) U03 from its form: the run page follows the run until it is ok.
  step('d) U03 runs from its form and ends ok');
  const u03Run = await runFromForm('U03', '{}');
  await waitText('#run-status', 'ok');
  check((await text(page.locator('#run-trigger'))) === 'console', 'the U03 run was started by the console');
  await page.locator('pre#run-output').waitFor();
  await shot('run-u03');

  // f) The ASA page with data, and the flows page the README shows.
  step('f) /asa shows the checkpoint, newest event, lag and Execution Log');
  await page.goto(`${base}/asa`);
  for (const sel of ['#asa-checkpoint', '#asa-newest-event', '#asa-lag']) {
    check((await text(page.locator(sel))).length > 0, `${sel} is not empty`);
  }
  await page.locator('table#execution-log tr').first().waitFor();
  await shot('asa');
  await page.goto(`${base}/`);
  await waitText(`${m10} td.state`, 'on');
  await shot('flows');
  // The README's picture: the first screen of the flows page at 1000 px.
  await shot('console', false);

  console.log(JSON.stringify({ failed_run: failedRun, u03_run: u03Run, csv: csvPath }));
});
