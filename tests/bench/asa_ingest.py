#!/usr/bin/env python3
"""Pull every Okta ASA audit event into SQLite: the plain script a competent user might write
instead of flowhost. It is the "python" baseline of flowhost-bench (tests/bench).

Standard library only (urllib.request, json, sqlite3). It does what flowhost's M10 chain does:
the same enrichment strings as S30-S37, the page's related objects in a dict, one transaction per
page, the next page from the Link header's rel="next" offset, and a checkpoint row (offset of
the next page, events stored from it) so that a second run resumes instead of starting over.
The tables have the layout flowhost creates, so either can write the same file.

    asa_ingest.py --base-url http://127.0.0.1:PORT --team TEAM \\
        --key-id ID --key-secret SECRET --db events.db [--count 1000]

Prints one JSON line: {"events": rows written, "pages": pages fetched, "seconds": wall,
"split": {"http": s, "json": s, "enrich": s, "sqlite": s}} (seconds measured per phase).
"""

import argparse
import json
import re
import sqlite3
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone

EVENTS = "t_audit_events"
CHECKPOINTS = "t_audit_checkpoints"
LOG = "t_execution_log"
COLUMNS = ("id", "timestamp", "type", "actor", "user", "client", "group", "project",
           "hostname", "server", "gateway", "from_addr", "raw_event")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS "{EVENTS}" ("_id" INTEGER PRIMARY KEY,
    {", ".join(f'"{c}" TEXT' for c in COLUMNS)});
CREATE UNIQUE INDEX IF NOT EXISTS "uk:{EVENTS}:id" ON "{EVENTS}" ("id");
CREATE INDEX IF NOT EXISTS "ix:{EVENTS}:timestamp" ON "{EVENTS}" ("timestamp");
CREATE TABLE IF NOT EXISTS "{CHECKPOINTS}" ("_id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "LastOffset" TEXT, "LastDateTime" TEXT, "LastCount" REAL);
CREATE TABLE IF NOT EXISTS "{LOG}" ("_id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "datetime" TEXT, "eventswritten" TEXT, "notes" TEXT);
"""

_COLS = ", ".join(f'"{c}"' for c in COLUMNS)
_MARKS = ", ".join("?" for _ in COLUMNS)
INSERT = f'INSERT INTO "{EVENTS}" ({_COLS}) VALUES ({_MARKS})'
UPSERT = INSERT + ' ON CONFLICT ("id") DO UPDATE SET ' + ", ".join(
    f'"{c}" = excluded."{c}"' for c in COLUMNS[1:])
INSERT_NEW = INSERT + ' ON CONFLICT ("id") DO NOTHING'


def text_of(v):
    """A JSON value as text: strings as they are, null as "", anything else as JSON."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def ref_of(v):
    """A reference: a non-empty string, else None."""
    return v if isinstance(v, str) and v else None


def describe(kind, ref, related):
    """The S32-S37 line for related object `ref` ("" if unknown or empty)."""
    entry = related.get(ref)
    obj = entry.get("object") if isinstance(entry, dict) else None
    if not isinstance(obj, dict) or not obj:
        return ""
    f = lambda k: text_of(obj.get(k))  # noqa: E731
    if kind == "user":
        return f"{f('name')} (status: {f('status')} , usertype: {f('user_type')})"
    if kind == "client":
        return f"{f('user_name')} (hostname: {f('hostname')}, OS: {f('os')}, state: {f('state')})"
    if kind == "server":
        return (f"{f('hostname')} (project: {f('project_name')}, canonical name: "
                f"{f('canonical_name')}, access address: {f('access_address')}, "
                f"OS: {f('os')}, OS type: {f('os_type')})")
    if kind == "gateway":
        return (f"{f('name')} (access_address: {f('access_address')}, "
                f"default_address: {f('default_address')})")
    return f("name")  # group, project


_TS = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})\Z")


def iso_ms(s):
    """RFC 3339 -> the millisecond "isoString" in UTC (truncated); unparsable text as is."""
    m = _TS.match(s.strip())
    if not m:
        return s
    date, clock, frac, off = m.groups()
    try:
        dt = datetime.fromisoformat(f"{date}T{clock}" + ("+00:00" if off in ("Z", "z") else off))
    except ValueError:
        return s
    if dt.utcoffset():
        dt = dt.astimezone(timezone.utc)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{(frac or '')[:3].ljust(3, '0')}Z"


def row_of(event, related):
    """The Audit Events row of one event, in COLUMNS order."""
    d = event.get("details")
    if not isinstance(d, dict):
        d = {}

    def one(key, kind):
        r = ref_of(d.get(key))
        return None if r is None else describe(kind, r, related)

    def first(a, b, kind):
        v = one(a, kind)
        if v is None:
            v = one(b, kind)
        return v or ""

    server = one("server", "server")
    if server is None:
        servers = d.get("servers") if isinstance(d.get("servers"), list) else []
        texts = (describe("server", r, related) for r in servers if ref_of(r))
        server = "; ".join(t for t in texts if t)
    return (
        event["id"],
        iso_ms(text_of(event.get("timestamp"))),
        text_of(d.get("type")),
        one("actor", "user") or "",
        first("target_user", "user", "user"),
        one("client", "client") or "",
        first("group_id", "group", "group"),
        first("project_id", "project", "project"),
        text_of(d.get("hostname")),
        server,
        one("gateway", "gateway") or "",
        text_of(d.get("from_address")),
        json.dumps(event, separators=(",", ":"), ensure_ascii=False),
    )


def next_offset(links):
    """The offset of the rel="next" entry of the Link header(s), or ""."""
    for part in ", ".join(links).split(","):
        m = re.match(r"\s*<([^>]*)>(.*)", part)
        if m and re.search(r';\s*rel="?next"?', m.group(2)):
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(m.group(1)).query)
            return query.get("offset", [""])[0]
    return ""


def http(url, data=None, headers=None, attempts=5):
    """(Link headers, body); retries 429 and 5xx with backoff."""
    for attempt in range(attempts):
        req = urllib.request.Request(url, data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.headers.get_all("Link") or [], r.read()
        except urllib.error.HTTPError as e:
            if (e.code == 429 or e.code >= 500) and attempt + 1 < attempts:
                time.sleep(min(0.5 * 2 ** attempt, 10))
                continue
            raise SystemExit(f"{req.get_method()} {url}: HTTP {e.code}: {e.read()[:300]!r}")


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", required=True)
    p.add_argument("--team", required=True)
    p.add_argument("--key-id", required=True)
    p.add_argument("--key-secret", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--count", type=int, default=1000)
    a = p.parse_args()

    con = sqlite3.connect(a.db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.executescript(SCHEMA)
    cp = con.execute(f'SELECT "_id", "LastOffset", "LastCount" FROM "{CHECKPOINTS}" '
                     'ORDER BY "_id" LIMIT 1').fetchone()
    if cp is None:
        cur = con.execute(f'INSERT INTO "{CHECKPOINTS}" ("LastOffset", "LastDateTime", '
                          '"LastCount") VALUES (?, ?, ?)', ("", now(), 0))
        cp = (cur.lastrowid, "", 0)
    cp_id, offset, last_count = cp[0], cp[1] or "", int(cp[2] or 0)

    team_url = f"{a.base_url.rstrip('/')}/v1/teams/{urllib.parse.quote(a.team.lower(), safe='')}"
    split = {"http": 0.0, "json": 0.0, "enrich": 0.0, "sqlite": 0.0}
    started = time.perf_counter()

    t = time.perf_counter()
    body = json.dumps({"key_id": a.key_id, "key_secret": a.key_secret}).encode()
    _, raw = http(f"{team_url}/service_token", body,
                  {"Content-Type": "application/json", "Accept": "application/json"})
    bearer = "Bearer " + json.loads(raw)["bearer_token"]
    split["http"] += time.perf_counter() - t

    written_total = pages = 0
    while True:
        url = f"{team_url}/auditsV2?count={a.count}"
        if offset:
            url += "&offset=" + urllib.parse.quote(offset, safe="")
        t0 = time.perf_counter()
        links, raw = http(url, headers={"Authorization": bearer, "Accept": "application/json"})
        t1 = time.perf_counter()
        page = json.loads(raw)
        t2 = time.perf_counter()
        pages += 1
        events = page.get("list") or []
        related = page.get("related_objects") or {}
        nxt = next_offset(links)
        full = bool(nxt)
        n = len(events)
        split["http"] += t1 - t0
        split["json"] += t2 - t1
        if not full and n == last_count:
            con.execute(f'INSERT INTO "{LOG}" ("datetime", "eventswritten", "notes") '
                        'VALUES (?, ?, ?)', (now(), "0", "No new events"))
            break
        rows = [row_of(e, related) for e in events]
        t3 = time.perf_counter()
        note = "Full page" if full else ("First part page" if last_count == 0
                                         else "Subsequent part page")
        con.execute("BEGIN IMMEDIATE")
        try:
            before = con.total_changes
            # Part of a page may be stored already (it was the last page before): keep it.
            con.executemany(UPSERT if full and last_count == 0 else INSERT_NEW, rows)
            written = con.total_changes - before
            new_offset, new_count = (nxt, 0) if full else (offset, n)
            con.execute(f'UPDATE "{CHECKPOINTS}" SET "LastOffset" = ?, "LastDateTime" = ?, '
                        '"LastCount" = ? WHERE "_id" = ?', (new_offset, now(), new_count, cp_id))
            con.execute(f'INSERT INTO "{LOG}" ("datetime", "eventswritten", "notes") '
                        'VALUES (?, ?, ?)', (now(), str(written), note))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        t4 = time.perf_counter()
        split["enrich"] += t3 - t2
        split["sqlite"] += t4 - t3
        written_total += written
        if not full:
            break
        offset, last_count = nxt, 0
    con.close()
    print(json.dumps({"events": written_total, "pages": pages,
                      "seconds": time.perf_counter() - started, "split": split}))


if __name__ == "__main__":
    sys.exit(main())
