//! The native path: the same fetch, enrichment and inserts as the WASM chain, written directly
//! in Rust (reqwest, serde_json, rusqlite), with no WASM and nothing reused from the flows: the
//! practical limit of this design (one page at a time, one transaction per page).
//!
//! Page loop, as M10 decides it: a page with a `next` link moves the checkpoint and upserts
//! every event ("Full page"); the last page, if it holds more events than are stored from it,
//! inserts the new ones ("First/Subsequent part page"); the same last page again is "No new
//! events". Related objects live in a `HashMap` for the page (the WASM chain stores them in
//! the Audit Related Objects table, S20/S21). The database is created by
//! `flowhost::store::Store::open`, so the physical schema is the host's, and written with plain
//! prepared statements in one transaction per page.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::measure::{self, thread_cpu, CpuMark};
use crate::report::{Ingest, Part};
use crate::Env;

/// An auditsV2 page (a missing or `null` member is empty). The events stay text until
/// enrichment parses each one and keeps its text as `raw_event`, as the flows do.
#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    list: Option<Vec<Box<serde_json::value::RawValue>>>,
    #[serde(default)]
    related_objects: Option<HashMap<String, Value>>,
}

/// Which helper's text: the kind the column asks for (not the object's own `type`).
#[derive(Clone, Copy)]
enum Kind {
    Client,
    Gateway,
    Group,
    Project,
    Server,
    User,
}

/// A JSON value as text: strings as they are, `null`/absent as `""`, the rest as JSON.
fn text_of(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A reference: a non-empty string.
fn ref_of(v: Option<&Value>) -> Option<&str> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// The line for the related object `r` (`""` if unknown or empty).
fn describe(kind: Kind, r: &str, related: &HashMap<String, Value>) -> String {
    let Some(obj) = related
        .get(r)
        .and_then(|e| e.get("object"))
        .and_then(Value::as_object)
        .filter(|o| !o.is_empty())
    else {
        return String::new();
    };
    let f = |k: &str| text_of(obj.get(k));
    match kind {
        Kind::Client => format!(
            "{} (hostname: {}, OS: {}, state: {})",
            f("user_name"),
            f("hostname"),
            f("os"),
            f("state")
        ),
        Kind::Gateway => format!(
            "{} (access_address: {}, default_address: {})",
            f("name"),
            f("access_address"),
            f("default_address")
        ),
        Kind::Group | Kind::Project => f("name"),
        Kind::Server => format!(
            "{} (project: {}, canonical name: {}, access address: {}, OS: {}, OS type: {})",
            f("hostname"),
            f("project_name"),
            f("canonical_name"),
            f("access_address"),
            f("os"),
            f("os_type")
        ),
        Kind::User => format!(
            "{} (status: {} , usertype: {})",
            f("name"),
            f("status"),
            f("user_type")
        ),
    }
}

/// RFC 3339 → the millisecond "isoString" in UTC (truncated); `None` if it does not parse.
fn iso_ms(s: &str) -> Option<String> {
    let b = s.as_bytes();
    // The form ASA writes: `YYYY-MM-DDTHH:MM:SS.fffffffffZ` (any fraction length, or none).
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() >= 20
        && b[b.len() - 1] == b'Z'
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
    {
        let frac = &s[19..s.len() - 1];
        let ok_frac = frac.is_empty()
            || (frac.len() > 1
                && frac.starts_with('.')
                && frac[1..].bytes().all(|c| c.is_ascii_digit()));
        if ok_frac {
            let mut ms: String = frac.get(1..).unwrap_or("").chars().take(3).collect();
            while ms.len() < 3 {
                ms.push('0');
            }
            // Still reject impossible dates, as a parser would.
            if s[..19].parse::<jiff::civil::DateTime>().is_ok() {
                return Some(format!("{}.{ms}Z", &s[..19]));
            }
            return None;
        }
    }
    // Anything else (offsets, lower-case separators): a real parser.
    let ts: jiff::Timestamp = s.trim().parse().ok()?;
    let ms = jiff::Timestamp::from_millisecond(ts.as_millisecond()).ok()?;
    Some(ms.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// An Audit Events row, in the table's column order.
struct Row {
    cols: [String; 13],
}

/// The row of one event (`None` for an event without an id or that is not JSON).
fn row_of(text: &serde_json::value::RawValue, related: &HashMap<String, Value>) -> Option<Row> {
    let event: Value = serde_json::from_str(text.get()).ok()?;
    let id = ref_of(event.get("id"))?.to_string();
    let empty = serde_json::Map::new();
    let d = event
        .get("details")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let one = |key: &str, kind: Kind| ref_of(d.get(key)).map(|r| describe(kind, r, related));
    let first =
        |a: &str, b: &str, kind: Kind| one(a, kind).or_else(|| one(b, kind)).unwrap_or_default();
    let server = one("server", Kind::Server).unwrap_or_else(|| {
        d.get("servers")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|s| ref_of(Some(s)))
                    .map(|r| describe(Kind::Server, r, related))
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    });
    let raw_ts = text_of(event.get("timestamp"));
    Some(Row {
        cols: [
            id,
            iso_ms(&raw_ts).unwrap_or(raw_ts),
            text_of(d.get("type")),
            one("actor", Kind::User).unwrap_or_default(),
            first("target_user", "user", Kind::User),
            one("client", Kind::Client).unwrap_or_default(),
            first("group_id", "group", Kind::Group),
            first("project_id", "project", Kind::Project),
            text_of(d.get("hostname")),
            server,
            one("gateway", Kind::Gateway).unwrap_or_default(),
            text_of(d.get("from_address")),
            text.get().to_string(),
        ],
    })
}

/// The `offset` of the `rel="next"` entry of a `Link` header, percent-decoded.
fn next_offset(link: &str) -> Option<String> {
    for entry in link.split(',') {
        let entry = entry.trim();
        let (target, params) = entry.strip_prefix('<')?.split_once('>')?;
        if !params.split(';').any(|p| {
            let p = p.trim();
            p == "rel=\"next\"" || p == "rel=next"
        }) {
            continue;
        }
        let query = target.split_once('?')?.1;
        for kv in query.split('&') {
            if let Some(v) = kv.strip_prefix("offset=") {
                return percent_decode(v);
            }
        }
        return None;
    }
    None
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn now_iso() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Wall and thread-CPU seconds of one phase, accumulated.
#[derive(Default, Clone, Copy)]
struct Phase {
    wall: f64,
    cpu: f64,
}

impl Phase {
    fn time<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let (w, c) = (Instant::now(), thread_cpu());
        let r = f();
        self.wall += w.elapsed().as_secs_f64();
        self.cpu += thread_cpu() - c;
        r
    }
}

pub fn run(env: &Env) -> Result<Ingest> {
    let mut perf = crate::perf::Ctl::from_env()?;
    let sim = crate::start_sim(env.events)?;
    let dir = env.tempdir("native")?;
    let db = dir.path().join("native.db");
    // The host creates the database: same tables, columns and indexes as the WASM run's.
    let schemas = Arc::new(
        flowhost::schema::Schemas::load_dirs(&[env.root.join("tables")])
            .map_err(|e| anyhow!("{e}"))?,
    );
    drop(flowhost::store::Store::open(&db, schemas).map_err(|e| anyhow!("{e}"))?);

    // The host's connection settings.
    let mut conn = flowhost::store::open_connection(&db)?;
    // And the host's checkpoints: on their own thread, not inside a commit.
    let checkpoints = flowhost::store::Checkpoints::start(&db)?;
    checkpoints.adopt(&conn)?;
    let events_t = flowhost::schema::sql_table_name("Audit Events");
    let cp_t = flowhost::schema::sql_table_name("Audit Checkpoints");
    let log_t = flowhost::schema::sql_table_name("Execution Log");
    let cols = [
        "id",
        "timestamp",
        "type",
        "actor",
        "user",
        "client",
        "group",
        "project",
        "hostname",
        "server",
        "gateway",
        "from_addr",
        "raw_event",
    ];
    let quoted: Vec<String> = cols.iter().map(|c| format!("\"{c}\"")).collect();
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let insert = format!(
        "INSERT INTO \"{events_t}\" ({}) VALUES ({})",
        quoted.join(", "),
        marks.join(", ")
    );
    let sets: Vec<String> = quoted[1..]
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    let upsert_sql = format!(
        "{insert} ON CONFLICT (\"id\") DO UPDATE SET {}",
        sets.join(", ")
    );
    let insert_new_sql = format!("{insert} ON CONFLICT (\"id\") DO NOTHING");
    // U03's reset: one checkpoint row.
    conn.execute(
        &format!("INSERT INTO \"{cp_t}\" (\"LastOffset\", \"LastDateTime\", \"LastCount\") VALUES ('', ?1, 0)"),
        [now_iso()],
    )?;
    let cp_update = format!(
        "UPDATE \"{cp_t}\" SET \"LastOffset\" = ?1, \"LastDateTime\" = ?2, \"LastCount\" = ?3 WHERE \"_id\" = (SELECT min(\"_id\") FROM \"{cp_t}\")"
    );
    let log_insert = format!(
        "INSERT INTO \"{log_t}\" (\"datetime\", \"eventswritten\", \"notes\") VALUES (?1, ?2, ?3)"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = reqwest::Client::builder()
        .user_agent("flowhost-bench")
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let team_url = format!("{}/v1/teams/{}", sim.base_url(), sim.team().to_lowercase());

    measure::reset_peak_rss();
    if let Some(p) = perf.as_mut() {
        p.enable()?;
    }
    let cpu = CpuMark::now();
    let started = Instant::now();
    let (mut http, mut json, mut enrich, mut sql) = (
        Phase::default(),
        Phase::default(),
        Phase::default(),
        Phase::default(),
    );
    let token: Value = http.time(|| {
        rt.block_on(async {
            let r = client
                .post(format!("{team_url}/service_token"))
                .json(&serde_json::json!({"key_id": sim.key_id(), "key_secret": sim.key_secret()}))
                .send()
                .await?;
            anyhow::Ok(r.error_for_status()?.json::<Value>().await?)
        })
    })?;
    let bearer = format!(
        "Bearer {}",
        token["bearer_token"].as_str().context("no bearer_token")?
    );

    let (mut offset, mut last_count) = (String::new(), 0u64);
    let mut written_total = 0u64;
    loop {
        let mut url = format!("{team_url}/auditsV2?count={}", env.count);
        if !offset.is_empty() {
            url.push_str("&offset=");
            url.push_str(&percent_encode(&offset));
        }
        let (link, body) = http.time(|| {
            rt.block_on(async {
                let r = client
                    .get(&url)
                    .header("Authorization", &bearer)
                    .header("Accept", "application/json")
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!("GET {url}: {}", r.status());
                }
                let link = r
                    .headers()
                    .get_all("link")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect::<Vec<_>>()
                    .join(", ");
                Ok((link, r.bytes().await?))
            })
        })?;
        let page: Page = json.time(|| serde_json::from_slice(&body))?;
        let next = next_offset(&link).unwrap_or_default();
        let list = page.list.unwrap_or_default();
        let related = page.related_objects.unwrap_or_default();
        let n = list.len() as u64;
        let full = !next.is_empty();
        if !full && n == last_count {
            // No new events: log it and stop (the WASM chain's last M10 run does the same).
            sql.time(|| -> Result<()> {
                conn.execute(
                    &log_insert,
                    rusqlite::params![now_iso(), "0", "No new events"],
                )?;
                Ok(())
            })?;
            break;
        }
        let rows: Vec<Row> =
            enrich.time(|| list.iter().filter_map(|e| row_of(e, &related)).collect());
        if rows.len() != list.len() {
            bail!("an event without an id");
        }
        let note = if full {
            "Full page"
        } else if last_count == 0 {
            "First part page"
        } else {
            "Subsequent part page"
        };
        let written = sql.time(|| -> Result<u64> {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut written = 0u64;
            {
                // Part of a page may be stored already (it was the last page before): keep it.
                let mut stmt = tx.prepare_cached(if full && last_count == 0 {
                    &upsert_sql
                } else {
                    &insert_new_sql
                })?;
                for r in &rows {
                    written += stmt.execute(rusqlite::params_from_iter(r.cols.iter()))? as u64;
                }
                let (cp_offset, cp_count) = if full { (&next, 0) } else { (&offset, n) };
                tx.prepare_cached(&cp_update)?.execute(rusqlite::params![
                    cp_offset,
                    now_iso(),
                    cp_count as f64
                ])?;
                tx.prepare_cached(&log_insert)?.execute(rusqlite::params![
                    now_iso(),
                    written.to_string(),
                    note
                ])?;
            }
            tx.commit()?;
            checkpoints.committed(&conn);
            Ok(written)
        })?;
        written_total += written;
        if full {
            offset = next;
            last_count = 0;
        } else {
            break;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let (client_cpu, sim_cpu) = cpu.since();
    if let Some(p) = perf.as_mut() {
        p.disable()?;
    }
    let pages = sim.stats().audit_requests;
    drop(conn);
    // The drain's peak, before the digest reads the table back.
    let peak_rss_kb = measure::self_peak_rss_kb();
    let (events, digest) = measure::digest(&db)?;
    if events != written_total {
        bail!("wrote {written_total} rows but the table has {events}");
    }
    let other = Phase {
        wall: wall - http.wall - json.wall - enrich.wall - sql.wall,
        cpu: client_cpu - http.cpu - json.cpu - enrich.cpu - sql.cpu,
    };
    let part = |key: &str, name: &str, p: Phase, how: &str| Part {
        key: key.into(),
        name: name.into(),
        wall_s: Some(p.wall),
        cpu_s: Some(p.cpu),
        how: how.into(),
    };
    let split = vec![
        part(
            "http",
            "HTTP: request until the body is read (wall includes the simulator serving it)",
            http,
            "measured (wall; thread CPU = client side)",
        ),
        part(
            "json",
            "JSON: parse the page (serde_json)",
            json,
            "measured",
        ),
        part(
            "enrich",
            "enrichment: parse each event, rows, strings, raw_event",
            enrich,
            "measured",
        ),
        part(
            "sqlite",
            "SQLite: upserts + checkpoint + log, commit per page",
            sql,
            "measured",
        ),
        part(
            "other",
            "other (loop, allocation; CPU: any other client thread)",
            other,
            "derived (total - the above)",
        ),
        Part {
            key: "sim".into(),
            name: "simulator CPU (its own threads: generating and serving pages)".into(),
            wall_s: None,
            cpu_s: Some(sim_cpu),
            how: "measured (/proc/self/task/*/schedstat)".into(),
        },
    ];
    Ok(Ingest {
        mode: "native".into(),
        events,
        pages,
        seconds: wall,
        cpu_s: client_cpu,
        sim_cpu_s: sim_cpu,
        server_cpu_s: None,
        flow_calls: 0,
        db_bytes: measure::db_size(&db)?,
        history_bytes: 0,
        peak_rss_kb,
        digest,
        split,
        flows: Vec::new(),
        notes: Vec::new(),
        cwasm: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_string() {
        assert_eq!(
            iso_ms("2024-03-05T01:02:03.123456789Z").as_deref(),
            Some("2024-03-05T01:02:03.123Z")
        );
        assert_eq!(
            iso_ms("2016-10-18T17:26:30Z").as_deref(),
            Some("2016-10-18T17:26:30.000Z")
        );
        assert_eq!(
            iso_ms("2016-10-18T17:26:30.5Z").as_deref(),
            Some("2016-10-18T17:26:30.500Z")
        );
        assert_eq!(
            iso_ms("2016-10-18T19:26:30.25+02:00").as_deref(),
            Some("2016-10-18T17:26:30.250Z")
        );
        assert_eq!(iso_ms("not a time"), None);
        assert_eq!(iso_ms("2023-02-30T00:00:00Z"), None);
    }

    #[test]
    fn link_next_offset() {
        let h = "<http://x/v1/teams/t/auditsV2?count=2&offset=a%3D%3D&prev=true>; rel=\"prev\", <http://x/v1/teams/t/auditsV2?count=2&offset=b_-%3D%3D>; rel=\"next\"";
        assert_eq!(next_offset(h).as_deref(), Some("b_-=="));
        assert_eq!(next_offset(""), None);
    }
}
