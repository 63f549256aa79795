//! Offloading Audit Events to long-term storage (O10) and to a SIEM (O20).
//!
//! - O10 writes a batch of rows (oldest first) as one gzip-compressed JSONL object, one row per
//!   line as stored (`raw_event` kept as text). The object's name is derived from the batch's
//!   *first* row only ([`object_key`]), so a batch that is retried after a crash (same first
//!   row, possibly more rows) overwrites the object it wrote before instead of adding another.
//! - O20 sends a batch as Splunk HTTP Event Collector events ([`hec_event`], [`hec_body`]), the
//!   event id as the event's `id` field so that a batch sent twice can be deduplicated, and
//!   deletes the rows only after HEC acknowledged them ([`hec_acknowledged`]).

use std::io::{self, Write};

use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Map, Value};

use crate::env::{self, InvalidSetting};
use crate::model::{Env, HecOffloadIn, ObjectOffloadIn};
use crate::{text_of, time};

/// An Audit Events row as `tables::find` gives it: column → value.
pub type Row = Map<String, Value>;

/// Rows per `tables::find` while O10 collects a batch (the host caps one find at 10 000 rows;
/// smaller pages keep a flow's memory small).
pub const PAGE: u32 = 1000;
/// Events per O20 request unless the input says otherwise.
pub const DEFAULT_HEC_BATCH: u32 = 1000;
/// The most events O20 sends in one request (one `tables::find`, one HTTP body).
pub const MAX_HEC_BATCH: u32 = 10_000;
/// The HEC `source` and `sourcetype` of every event.
pub const HEC_SOURCE: &str = "okta:asa";
pub const HEC_SOURCETYPE: &str = "okta:asa:audit";
/// The name under which the operator provides the HEC token.
pub const HEC_TOKEN: &str = "HEC_TOKEN";

/// The error O20 gives while no HEC endpoint is set.
pub const HEC_URL_NOT_SET: &str = "Environment Variables: hecUrl is not set; run U02 with \
     {\"hecUrl\": \"https://splunk.example.com:8088/services/collector/event\"}";

/// Where and how much O10 offloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectTarget {
    pub store: String,
    /// `""` or ending in `/`.
    pub prefix: String,
    pub batch: u32,
}

impl ObjectOffloadIn {
    /// The settings (a [`checked`](Env::checked) env) with this input's overrides, checked.
    pub fn target(&self, env: &Env) -> Result<ObjectTarget, InvalidSetting> {
        Ok(ObjectTarget {
            store: match &self.store {
                Some(s) => env::validate_store("store", s)?,
                None => env.offload_store.clone(),
            },
            prefix: match &self.prefix {
                Some(p) => env::normalize_prefix("prefix", p)?,
                None => env.offload_prefix.clone(),
            },
            batch: match &self.batch {
                Some(b) => env::parse_count("batch", b, env::MAX_OFFLOAD_BATCH)?,
                None => env.batch()?,
            },
        })
    }
}

impl HecOffloadIn {
    /// Events per request: the input's `batch` (1..=10000) or 1000.
    pub fn batch(&self) -> Result<u32, InvalidSetting> {
        match &self.batch {
            Some(b) => env::parse_count("batch", b, MAX_HEC_BATCH),
            None => Ok(DEFAULT_HEC_BATCH),
        }
    }
}

/// The HEC endpoint of a [`checked`](Env::checked) env, or the error that says how to set it.
pub fn hec_url(env: &Env) -> Result<&str, InvalidSetting> {
    match env.hec_url.trim() {
        "" => Err(InvalidSetting(HEC_URL_NOT_SET.to_string())),
        url => Ok(url),
    }
}

/// The row's key (its `id` column), if it has one.
pub fn row_id(row: &Row) -> Option<String> {
    Some(text_of(row.get("id"))).filter(|id| !id.is_empty())
}

/// The object name of a batch whose first (oldest) row is `first`:
/// `{prefix}{YYYY/MM/DD}/{timestamp, ':' → '-'}_{id, URL-safe}.jsonl.gz`, e.g.
/// `asa/audit-events/2024/03/05/2024-03-05T01-02-03.123Z_ag801Wtj58WV8rIF2-HDkw.jsonl.gz`.
///
/// The timestamp is the millisecond "isoString" in UTC; a row whose timestamp does not parse
/// goes to `{prefix}undated/{id}.jsonl.gz`. Only the first row counts, so the name is the same
/// whenever the same batch (or a longer batch starting with the same row) is written again.
pub fn object_key(prefix: &str, first: &Row) -> String {
    let id = url_safe_id(&text_of(first.get("id")));
    match time::iso_ms(&text_of(first.get("timestamp"))) {
        Some(iso) => {
            let day = iso[..10].replace('-', "/");
            format!("{prefix}{day}/{}_{id}.jsonl.gz", iso.replace(':', "-"))
        }
        None => format!("{prefix}undated/{id}.jsonl.gz"),
    }
}

/// An event id as a URL- and file-name-safe text: base64's `+` and `/` become `-` and `_`
/// (base64url), trailing `=` padding is dropped, and any other character outside
/// `A-Z a-z 0-9 - _ . ~` is percent-encoded. An empty id is `_`.
pub fn url_safe_id(id: &str) -> String {
    let id = id.trim_end_matches('=');
    if id.is_empty() {
        return "_".to_string();
    }
    let mapped: String = id
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    crate::url::percent_encode(&mapped)
}

/// Gzip-compressed JSON Lines, written row by row (so a batch never sits in memory twice).
/// The gzip header carries no time or name, so the same rows always give the same bytes.
pub struct JsonlGz {
    gz: GzEncoder<Vec<u8>>,
    rows: u64,
}

impl Default for JsonlGz {
    fn default() -> Self {
        JsonlGz::new()
    }
}

impl JsonlGz {
    pub fn new() -> Self {
        JsonlGz { gz: GzEncoder::new(Vec::new(), Compression::default()), rows: 0 }
    }

    /// Appends `row` as one line of JSON.
    pub fn push(&mut self, row: &Row) -> io::Result<()> {
        serde_json::to_writer(&mut self.gz, row)?;
        self.gz.write_all(b"\n")?;
        self.rows += 1;
        Ok(())
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The complete `.jsonl.gz` bytes.
    pub fn finish(self) -> io::Result<Vec<u8>> {
        self.gz.finish()
    }
}

/// One Splunk HEC event for `row`:
/// `{"time": <epoch seconds.millis>, "host": host, "source": "okta:asa",
/// "sourcetype": "okta:asa:audit", "event": {"id": …, <the other columns>, "raw": <raw_event
/// as JSON>}}`. `time` is left out when the timestamp does not parse (HEC then uses the time
/// it received the event); a `raw_event` that is not JSON is sent as a string.
pub fn hec_event(row: &Row, host: &str) -> Value {
    let mut event = Map::new();
    event.insert("id".to_string(), Value::String(text_of(row.get("id"))));
    for (column, value) in row {
        if column != "raw_event" && column != "_id" && column != "id" {
            event.insert(column.clone(), value.clone());
        }
    }
    let raw = match row.get("raw_event") {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(text)) => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()))
        }
        Some(other) => other.clone(),
    };
    event.insert("raw".to_string(), raw);
    let mut out = Map::new();
    if let Some(secs) = time::epoch_seconds(&text_of(row.get("timestamp"))) {
        out.insert("time".to_string(), json!(secs));
    }
    out.insert("host".to_string(), Value::String(host.to_string()));
    out.insert("source".to_string(), Value::String(HEC_SOURCE.to_string()));
    out.insert("sourcetype".to_string(), Value::String(HEC_SOURCETYPE.to_string()));
    out.insert("event".to_string(), Value::Object(event));
    Value::Object(out)
}

/// The body of one HEC request: the rows' events, one JSON object per line.
pub fn hec_body(rows: &[Row], host: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            body.push(b'\n');
        }
        // Writing a `Value` into a `Vec` cannot fail.
        serde_json::to_writer(&mut body, &hec_event(row, host)).expect("JSON into a Vec");
    }
    body
}

/// Whether HEC acknowledged a request: HTTP 200 with `{"text": "Success", "code": 0}`.
/// Anything else (another status, a body that is not HEC's answer) is an error with the status
/// and the start of the body, so that rows are never deleted on an answer from something else.
pub fn hec_acknowledged(status: u16, body: &[u8]) -> Result<(), String> {
    let text = snippet(body);
    if status != 200 {
        return Err(format!("HTTP {status}: {text}"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.get("code").and_then(Value::as_i64) == Some(0) => Ok(()),
        _ => Err(format!("HTTP 200 without HEC's acknowledgement {{\"code\": 0}}: {text}")),
    }
}

/// At most 500 characters of a response body, for an error text.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(500) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None if text.is_empty() => "(empty body)".to_string(),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    fn row(v: Value) -> Row {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn event_row(id: &str, ts: &str) -> Row {
        let raw = json!({"id": id, "timestamp": ts, "details": {"type": "auth_token.issue"}});
        row(json!({"id": id, "timestamp": ts, "type": "auth_token.issue", "actor": "Jason",
            "user": "", "client": "", "group": "", "project": "", "hostname": "", "server": "",
            "gateway": "", "from_addr": null, "raw_event": raw.to_string()}))
    }

    fn gunzip(bytes: &[u8]) -> String {
        let mut out = String::new();
        GzDecoder::new(bytes).read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn object_names_come_from_the_first_row() {
        let first = event_row("ag801Wtj58WV8rIF2-HDkw==", "2024-03-05T01:02:03.123Z");
        assert_eq!(
            object_key("asa/audit-events/", &first),
            "asa/audit-events/2024/03/05/2024-03-05T01-02-03.123Z_ag801Wtj58WV8rIF2-HDkw.jsonl.gz"
        );
        // Any RFC 3339 form names the same UTC day and millisecond.
        let first = event_row("a+b/c==", "2024-03-05T10:02:03.123456+09:00");
        assert_eq!(object_key("", &first), "2024/03/05/2024-03-05T01-02-03.123Z_a-b_c.jsonl.gz");
        let first = event_row("x y", "not a time");
        assert_eq!(object_key("p/", &first), "p/undated/x%20y.jsonl.gz");
        assert_eq!(object_key("p/", &row(json!({}))), "p/undated/_.jsonl.gz");
    }

    #[test]
    fn url_safe_ids() {
        assert_eq!(url_safe_id("72H8i_PqrupQhBdw8-qu6g=="), "72H8i_PqrupQhBdw8-qu6g");
        assert_eq!(url_safe_id("ab+/cd=="), "ab-_cd");
        assert_eq!(url_safe_id("a:b%"), "a%3Ab%25");
        assert_eq!(url_safe_id("=="), "_");
    }

    #[test]
    fn jsonl_gz_round_trip() {
        let rows = [
            event_row("ag801Wtj58WV8rIF2-HDkw==", "2024-03-05T01:02:03.123Z"),
            event_row("i8ya5Th8OEVvfAdjVqutzA==", "2024-03-05T01:02:05.002Z"),
        ];
        let mut out = JsonlGz::new();
        for r in &rows {
            out.push(r).unwrap();
        }
        assert_eq!(out.rows(), 2);
        let bytes = out.finish().unwrap();
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
        let text = gunzip(&bytes);
        assert!(text.ends_with('\n'));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        for (line, r) in lines.iter().zip(&rows) {
            let back: Row = serde_json::from_str(line).unwrap();
            assert_eq!(&back, r);
            // raw_event stays text, as stored.
            assert!(back["raw_event"].is_string());
        }
        // Deterministic: the same rows give the same bytes (a retried batch rewrites the same
        // object).
        let mut again = JsonlGz::default();
        for r in &rows {
            again.push(r).unwrap();
        }
        assert_eq!(again.finish().unwrap(), bytes);
        // An empty stream is still valid gzip.
        assert_eq!(gunzip(&JsonlGz::new().finish().unwrap()), "");
    }

    #[test]
    fn hec_events() {
        let r = event_row("ag801Wtj58WV8rIF2-HDkw==", "2024-03-05T01:02:03.123Z");
        let e = hec_event(&r, "william-faulkner");
        assert_eq!(
            e,
            json!({"time": 1709600523.123, "host": "william-faulkner", "source": "okta:asa",
                "sourcetype": "okta:asa:audit", "event": {"id": "ag801Wtj58WV8rIF2-HDkw==",
                "timestamp": "2024-03-05T01:02:03.123Z", "type": "auth_token.issue", "actor": "Jason",
                "user": "", "client": "", "group": "", "project": "", "hostname": "", "server": "",
                "gateway": "", "from_addr": null, "raw": {"id": "ag801Wtj58WV8rIF2-HDkw==",
                "timestamp": "2024-03-05T01:02:03.123Z", "details": {"type": "auth_token.issue"}}}})
        );
        assert!(e.to_string().ends_with(",\"time\":1709600523.123}"), "{e}");
        // Unparsable timestamp: no time; raw_event that is not JSON: a string; no raw_event: null.
        let e = hec_event(
            &row(json!({"id": "x", "timestamp": "?", "raw_event": "{oops", "_id": 3})),
            "t",
        );
        assert!(e.get("time").is_none());
        assert_eq!(e["event"], json!({"id": "x", "timestamp": "?", "raw": "{oops"}));
        assert_eq!(hec_event(&row(json!({"id": "y"})), "t")["event"]["raw"], Value::Null);
    }

    #[test]
    fn hec_body_is_one_event_per_line() {
        let rows = [
            event_row("a==", "2024-03-05T01:02:03.000Z"),
            event_row("b==", "1970-01-01T00:00:00.001Z"),
        ];
        let body = String::from_utf8(hec_body(&rows, "t")).unwrap();
        let events: Vec<Value> =
            body.split('\n').map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["event"]["id"], "a==");
        assert_eq!(events[0]["time"], json!(1709600523.0));
        assert_eq!(events[1]["time"], json!(0.001));
        assert!(hec_body(&[], "t").is_empty());
    }

    #[test]
    fn only_hec_success_counts_as_acknowledged() {
        assert_eq!(hec_acknowledged(200, br#"{"text":"Success","code":0}"#), Ok(()));
        assert_eq!(
            hec_acknowledged(403, br#"{"text":"Invalid token","code":4}"#).unwrap_err(),
            r#"HTTP 403: {"text":"Invalid token","code":4}"#
        );
        assert!(hec_acknowledged(200, b"<html>ok</html>").unwrap_err().contains("HTTP 200"));
        assert!(hec_acknowledged(200, br#"{"text":"Incorrect index","code":7}"#).is_err());
        assert_eq!(hec_acknowledged(503, b"").unwrap_err(), "HTTP 503: (empty body)");
        let long = "x".repeat(2000);
        assert_eq!(hec_acknowledged(500, long.as_bytes()).unwrap_err().chars().count(), 511);
    }

    #[test]
    fn targets_and_batches() {
        let env = Env { asa_team: "t".into(), ..Env::default() }.checked().unwrap();
        let t = ObjectOffloadIn::default().target(&env).unwrap();
        assert_eq!(
            t,
            ObjectTarget {
                store: "archive".into(),
                prefix: "asa/audit-events/".into(),
                batch: 5000
            }
        );
        let input: ObjectOffloadIn =
            serde_json::from_value(json!({"store": "cold", "prefix": "x", "batch": "10"})).unwrap();
        assert_eq!(
            input.target(&env).unwrap(),
            ObjectTarget { store: "cold".into(), prefix: "x/".into(), batch: 10 }
        );
        let root: ObjectOffloadIn = serde_json::from_value(json!({"prefix": ""})).unwrap();
        assert_eq!(root.target(&env).unwrap().prefix, "");
        for bad in [json!({"batch": 0}), json!({"batch": 50001}), json!({"store": ""})] {
            let input: ObjectOffloadIn = serde_json::from_value(bad.clone()).unwrap();
            assert!(input.target(&env).is_err(), "{bad}");
        }
        assert!(serde_json::from_value::<ObjectOffloadIn>(json!({"bacth": 1})).is_err());

        assert_eq!(HecOffloadIn::default().batch().unwrap(), 1000);
        let input: HecOffloadIn = serde_json::from_value(json!({"batch": 10000})).unwrap();
        assert_eq!(input.batch().unwrap(), 10_000);
        let input: HecOffloadIn = serde_json::from_value(json!({"batch": 10001})).unwrap();
        assert!(input.batch().unwrap_err().0.contains("batch"));

        assert_eq!(hec_url(&env).unwrap_err().0, HEC_URL_NOT_SET);
        let env = Env { hec_url: "http://127.0.0.1:8088/services/collector/event".into(), ..env };
        assert_eq!(hec_url(&env).unwrap(), "http://127.0.0.1:8088/services/collector/event");
    }

    #[test]
    fn row_ids() {
        assert_eq!(row_id(&row(json!({"id": "a=="}))), Some("a==".to_string()));
        assert_eq!(row_id(&row(json!({"id": null}))), None);
        assert_eq!(row_id(&row(json!({}))), None);
    }
}
