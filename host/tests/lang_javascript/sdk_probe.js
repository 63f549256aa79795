// The JavaScript SDK against the real host (host/tests/lang_javascript.rs builds this as the
// flow `sdkprobe`). Each step's result goes into the output, which the test checks.
import {
  flow, call, forEach, forEachAll, tables, http, secrets, log, schedule, cache, blobs, grants, FlowhostError, FlowError,
} from './flowhost.js';

const T = 'Probe Items';

export const run = flow((input) => {
  // As a for-each item of itself (forEachAll below): fail before doing anything.
  if (input.failWith === 'early') throw new FlowError('the probe gave up early');
  const out = {};
  log.info(`sdkprobe starts: ${input.tag}`);

  // Tables: insert, get, find, update, count, delete.
  tables.clear(T);
  out.inserted = tables.insert(T, { id: 'a', n: 1, note: 'first', flag: true, data: { x: [1, 2] } });
  out.insertedMany = tables.insertMany(T, [{ id: 'b', n: 2 }, { id: 'c', n: 2 }]);
  out.upserted = tables.upsert(T, { id: 'c', n: 3, note: 'replaced' });
  out.got = tables.get(T, 'a');
  out.missing = tables.get(T, 'zzz');
  out.foundTwos = tables.find(T, { n: 2 }).map((r) => r.id);
  out.updated = tables.update(T, 'b', { note: 'changed' });
  out.updatedMissing = tables.update(T, 'zzz', { note: 'x' });
  out.afterUpdate = tables.get(T, 'b').note;
  out.deleted = tables.delete(T, 'a');
  out.deletedAgain = tables.delete(T, 'a');
  tables.insertMany(T, [{ id: 'd', n: 4 }, { id: 'e', n: 5 }]);
  out.deletedMany = tables.deleteMany(T, ['d', 'e', 'zzz']);
  out.count = tables.count(T);
  out.countTypeof = typeof out.count;

  // Another flow, once and for each item.
  out.echoed = call('echo', { hello: 'from js', n: 7 });
  out.each = forEach('echo', [1, 'two', { three: 3 }], 2);
  out.eachAll = forEachAll('echo', [{ a: 1 }, 'b'], 1);
  try {
    forEachAll('sdkprobe', [{ failWith: 'early' }], 1);
    out.eachAllFailed = null;
  } catch (e) {
    out.eachAllFailed = { kind: e.kind, message: e.message };
  }

  // HTTP to the test's loopback server, with a header and a JSON body.
  const resp = http.post(`${input.url}/hook`, {
    headers: { 'X-Probe': 'js' },
    json: { event: 'probe', n: 42 },
    timeoutMs: 10000,
  });
  out.http = { status: resp.status, ok: resp.ok, json: resp.json(), server: resp.header('X-Server') };

  // A secret, the cache and the clock.
  out.secretLength = secrets.get('JS_PROBE_SECRET').length;
  cache.set('k', 'v', 60000);
  out.cached = cache.get('k');
  cache.remove('k');
  out.cachedAfterRemove = cache.get('k');
  out.nowLooksRfc3339 = /^\d{4}-\d\d-\d\dT/.test(schedule.now());

  // Blobs: text and bytes in, bytes out.
  blobs.put('scratch', 'js/a.txt', 'hello blob');
  blobs.put('scratch', 'js/b.bin', new Uint8Array([0, 255, 7]));
  out.blobList = blobs.list('scratch', 'js/');
  out.blobText = new TextDecoder().decode(blobs.get('scratch', 'js/a.txt'));
  out.blobBytes = Array.from(blobs.get('scratch', 'js/b.bin'));
  out.blobMissing = blobs.get('scratch', 'js/none');
  out.blobDeleted = blobs.delete('scratch', 'js/a.txt');
  schedule.sleep(1);

  // Whether another flow may reach a URL: echo is granted no hosts.
  try {
    grants.grantedUrls([['echo', 'http://127.0.0.1:9']]);
    out.echoReaches = true;
  } catch (e) {
    out.echoReaches = e.kind;
  }

  // A refused table read, caught: the WIT case as `kind`.
  try {
    tables.count('Execution Log');
    out.denied = null;
  } catch (e) {
    out.denied = { kind: e.kind, message: e.message, isFlowhostError: e instanceof FlowhostError };
  }
  // A secret that is not granted.
  try {
    secrets.get('NOT_GRANTED');
  } catch (e) {
    out.secretDenied = e.kind;
  }

  // Uncaught, a host error ends the run with `kind: message`.
  if (input.failWith === 'host') tables.count('Execution Log');
  if (input.failWith === 'error') throw new TypeError('a plain error');
  if (input.failWith === 'flow') throw new FlowError('the probe gave up');
  if (input.failWith === 'async') return Promise.resolve(out);
  return out;
});
