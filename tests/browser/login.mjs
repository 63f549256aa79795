// The console's token mode in a real Chromium (issue 17.2/17.3): host/tests/console_browser.rs
// starts `flowhost serve` with `console: { token_secret: NAME }` and runs this script with the
// base URL, the right token and the artifacts folder. Without a session a page sends the
// browser to the login form; a wrong token is refused there; the right one sets a session
// cookie (HttpOnly, SameSite=Strict, not the token) with which the pages load. Exits 0 when
// every step passed, 1 (after a screenshot) otherwise.
//
//   node login.mjs --base=http://127.0.0.1:PORT --token=TOKEN --artifacts=DIR

import { check, options, run, step } from './lib.mjs';

const opt = options(['base', 'token', 'artifacts']);
const base = opt.base.replace(/\/+$/, '');
const timeout = Number(opt['timeout-ms']);

await run({ artifacts: opt.artifacts, timeout }, async (page, { text, shot }) => {
  const form = page.locator('form#login');
  const token = form.locator('input[name="token"]');
  const submit = form.locator('button[type="submit"], input[type="submit"]').first();

  step('a page without a session lands on the login form');
  await page.goto(`${base}/runs`);
  await page.waitForURL(/\/login(\?|$)/);
  await token.waitFor();
  await shot('login');

  step('a wrong token is refused and sets no cookie');
  await token.fill(`${opt.token}-wrong`);
  await submit.click();
  await form.waitFor();
  check(new URL(page.url()).pathname === '/login', `still on the login form (at ${page.url()})`);
  check((await page.context().cookies(base)).length === 0, 'no cookie after a wrong token');
  await shot('login-refused');

  step('the right token opens the flows page with a session cookie');
  await token.fill(opt.token);
  await submit.click();
  await page.locator('table#flows tr[data-flow]').first().waitFor();
  const cookies = await page.context().cookies(base);
  check(cookies.length === 1, `one session cookie (${JSON.stringify(cookies.map((c) => c.name))})`);
  const [session] = cookies;
  check(session.httpOnly, 'the session cookie is HttpOnly');
  check(session.sameSite === 'Strict', `the session cookie is SameSite=Strict (is ${session.sameSite})`);
  check(!session.value.includes(opt.token), 'the session cookie does not hold the token');
  check((await page.evaluate(() => document.cookie)) === '', 'scripts cannot read the session cookie');

  step('with the session, the other pages load');
  await page.goto(`${base}/runs`);
  await page.locator('table#runs').waitFor();
  await page.goto(`${base}/tables`);
  check((await text(page.locator('table#tables a.table').first())).length > 0, 'the tables page lists tables');
  await shot('tables');
});
