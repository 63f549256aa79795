//! What a child process reports back (one `@@bench <json>` line on its standard output) and
//! the number formatting of the printed figures.

use serde::{Deserialize, Serialize};

/// The prefix of the result line a child prints.
pub const RESULT_PREFIX: &str = "@@bench ";

/// One ingest run (wasm, native or python).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ingest {
    pub mode: String,
    /// Rows in Audit Events afterwards.
    pub events: u64,
    /// auditsV2 requests the simulator served.
    pub pages: u64,
    /// Wall seconds of the drain (set-up excluded).
    pub seconds: f64,
    /// CPU seconds of the client: the process minus the simulator's threads (python: the
    /// Python process itself).
    pub cpu_s: f64,
    /// CPU seconds of the in-process simulator's threads during the drain.
    pub sim_cpu_s: f64,
    /// CPU seconds of the database server's processes during the drain (wasm-pg only: the
    /// SQLite modes' database work is in `cpu_s`).
    #[serde(default)]
    pub server_cpu_s: Option<f64>,
    /// Top-level runs + child calls (wasm only).
    pub flow_calls: u64,
    /// Main database file after a WAL checkpoint (wasm-pg: `pg_database_size`).
    pub db_bytes: u64,
    /// Run-history database (wasm only).
    pub history_bytes: u64,
    /// Peak RSS in KiB: of the bench child process (wasm, native; includes the simulator) or
    /// of the Python process (python).
    pub peak_rss_kb: u64,
    /// Digest of the stored rows' enriched columns (see `measure::digest`).
    pub digest: String,
    /// Time split, in order.
    pub split: Vec<Part>,
    /// Per-flow child statistics from run history (wasm only).
    pub flows: Vec<FlowStat>,
    pub notes: Vec<String>,
    /// `.cwasm` file name → flow (wasm under `--perf` only).
    #[serde(default)]
    pub cwasm: std::collections::BTreeMap<String, String>,
}

/// Per round (the `i`-th run of each mode; within a round the modes run one after the other),
/// `a`'s client CPU per event over `b`'s, and `a`'s rate over `b`'s: how far the ratio of the
/// medians moves with the machine's moment. Rounds one mode lacks are left out.
pub fn round_ratios(a: &[Ingest], b: &[Ingest]) -> Vec<(f64, f64)> {
    let per_event = |i: &Ingest| i.cpu_s / i.events.max(1) as f64;
    let rate = |i: &Ingest| i.events as f64 / i.seconds.max(1e-9);
    a.iter()
        .zip(b)
        .map(|(a, b)| (per_event(a) / per_event(b), rate(a) / rate(b)))
        .collect()
}

/// The one digest every run stored, or an error naming each run's mode and digest when they
/// differ (the modes did not store the same rows: the comparison is void).
pub fn same_rows(runs: &[&Ingest]) -> Result<String, String> {
    let Some(first) = runs.first() else {
        return Ok(String::new());
    };
    if runs.iter().all(|r| r.digest == first.digest) {
        return Ok(first.digest.clone());
    }
    let each: Vec<String> = runs
        .iter()
        .map(|r| format!("{} {}", r.mode, r.digest))
        .collect();
    Err(format!(
        "DIGESTS DIFFER between runs ({}): the modes did not store the same rows",
        each.join(", ")
    ))
}

/// One line of a time split.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Part {
    /// Stable key (`http`, `json`, `enrich`, `sqlite`, ...) for derived figures.
    pub key: String,
    pub name: String,
    pub wall_s: Option<f64>,
    pub cpu_s: Option<f64>,
    /// "measured" or "derived" and how.
    pub how: String,
}

/// Calls of one child flow across the drain, from run history.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FlowStat {
    pub flow: String,
    pub calls: u64,
    /// Calls of a `pure` flow answered from an earlier call in the same run.
    #[serde(default)]
    pub memo_hits: u64,
    /// Wall time inside the calls, children included, summed over concurrent calls.
    pub total_ms: u64,
}

/// One figure of the micro or cli modes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Item {
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// Every repetition's value, for the spread.
    pub samples: Vec<f64>,
    pub note: String,
}

/// Each item of `rounds` (the same figures measured once a round) as the median of its rounds'
/// values, with those values as its samples; in the first round's order, then any item only a
/// later round has.
pub fn median_items(rounds: &[Vec<Item>]) -> Vec<Item> {
    let mut out: Vec<Item> = Vec::new();
    for it in rounds.iter().flatten() {
        match out.iter_mut().find(|o| o.name == it.name) {
            Some(o) => o.samples.push(it.value),
            None => out.push(Item {
                samples: vec![it.value],
                ..it.clone()
            }),
        }
    }
    for o in &mut out {
        o.value = crate::measure::median(o.samples.clone());
    }
    out
}

/// Whatever a child reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChildOut {
    pub ingest: Option<Ingest>,
    pub items: Vec<Item>,
}

impl ChildOut {
    pub fn print(&self) -> anyhow::Result<()> {
        println!("{RESULT_PREFIX}{}", serde_json::to_string(self)?);
        Ok(())
    }

    pub fn parse(stdout: &str) -> Option<ChildOut> {
        stdout
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(RESULT_PREFIX))
            .and_then(|j| serde_json::from_str(j).ok())
    }
}

/// `1234567.8` → `1,234,568`.
pub fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let n = v.round() as i64;
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// Per million events: `v * 1e6 / events`.
pub fn per_million(v: f64, events: u64) -> f64 {
    if events == 0 {
        f64::NAN
    } else {
        v * 1e6 / events as f64
    }
}

pub fn mb(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mode: &str, digest: &str) -> Ingest {
        Ingest {
            mode: mode.into(),
            digest: digest.into(),
            ..Default::default()
        }
    }

    #[test]
    fn round_ratios_pair_the_runs_of_each_round() {
        let ingest = |cpu_s: f64, seconds: f64| Ingest {
            events: 1000,
            cpu_s,
            seconds,
            ..Default::default()
        };
        let wasm = [ingest(0.02, 0.02), ingest(0.03, 0.025), ingest(0.02, 0.02)];
        let native = [ingest(0.01, 0.016), ingest(0.02, 0.02)];
        let ratios = round_ratios(&wasm, &native);
        assert_eq!(ratios.len(), 2, "the third round has no native run");
        let close = |x: f64, y: f64| (x - y).abs() < 1e-9;
        assert!(
            close(ratios[0].0, 2.0) && close(ratios[0].1, 0.8),
            "{ratios:?}"
        );
        assert!(
            close(ratios[1].0, 1.5) && close(ratios[1].1, 0.8),
            "{ratios:?}"
        );
    }

    #[test]
    fn equal_digests_pass_and_any_difference_fails_naming_the_runs() {
        let (a, b, c) = (run("wasm", "d1"), run("native", "d1"), run("python", "d2"));
        assert_eq!(same_rows(&[&a, &b]), Ok("d1".to_string()));
        assert_eq!(same_rows(&[&a]), Ok("d1".to_string()));
        assert_eq!(
            same_rows(&[&a, &b, &c]),
            Err(
                "DIGESTS DIFFER between runs (wasm d1, native d1, python d2): the modes did \
                 not store the same rows"
                    .to_string()
            )
        );
        // A second run of one mode that differs from its first counts too.
        assert!(same_rows(&[&a, &b, &run("wasm", "d3")]).is_err());
    }

    fn item(name: &str, value: f64) -> Item {
        Item {
            name: name.into(),
            value,
            unit: "µs".into(),
            samples: vec![value, value + 1.0],
            note: format!("about {name}"),
        }
    }

    #[test]
    fn each_figure_is_the_median_of_its_rounds_with_the_rounds_as_its_spread() {
        let rounds = vec![
            vec![item("fresh", 12.9), item("get", 2.2)],
            vec![item("fresh", 8.6), item("get", 4.2)],
            vec![item("fresh", 8.5), item("get", 2.3), item("late", 1.0)],
        ];
        let merged = median_items(&rounds);
        let names: Vec<&str> = merged.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["fresh", "get", "late"]);
        assert_eq!(merged[0].value, 8.6);
        assert_eq!(merged[0].samples, [12.9, 8.6, 8.5]);
        assert_eq!(merged[1].value, 2.3);
        assert_eq!(merged[2].value, 1.0);
        assert_eq!(merged[2].samples, [1.0]);
        assert_eq!(merged[1].note, "about get");
        assert!(median_items(&[]).is_empty());
    }
}
