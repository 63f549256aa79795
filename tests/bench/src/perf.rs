//! `--perf`: a sampled CPU profile of one ingest run, split by who owns the code, without any
//! hook in the host. The child runs under `perf record -F 999 -D -1 --control fifo:...`, and
//! enables sampling only around its drain; the parent then reads `perf report` (self time by
//! thread, object and symbol; the leaf frame, no call graphs) and sorts every sample into a
//! bucket: SQLite, JSON, HTTP, the WASM runtime, guest code (per flow: each compiled component
//! is a mapped `.cwasm` file named by its cache key), libc, the kernel, the simulator's threads.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub const CTL_ENV: &str = "FLOWHOST_BENCH_PERF_CTL";
pub const ACK_ENV: &str = "FLOWHOST_BENCH_PERF_ACK";

/// Whether `perf` runs here.
pub fn available() -> bool {
    Command::new("perf")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The child's end of perf's control FIFOs (present only when run under `--perf`).
pub struct Ctl {
    ctl: std::fs::File,
    ack: BufReader<std::fs::File>,
}

impl Ctl {
    pub fn from_env() -> Result<Option<Ctl>> {
        let (Some(ctl), Some(ack)) = (std::env::var_os(CTL_ENV), std::env::var_os(ACK_ENV)) else {
            return Ok(None);
        };
        let ctl = std::fs::OpenOptions::new()
            .write(true)
            .open(&ctl)
            .context("cannot open perf's control FIFO")?;
        let ack = BufReader::new(std::fs::File::open(&ack).context("cannot open perf's ack FIFO")?);
        Ok(Some(Ctl { ctl, ack }))
    }

    fn send(&mut self, cmd: &str) -> Result<()> {
        self.ctl.write_all(format!("{cmd}\n").as_bytes())?;
        self.ctl.flush()?;
        let mut line = String::new();
        self.ack.read_line(&mut line)?;
        Ok(())
    }

    pub fn enable(&mut self) -> Result<()> {
        self.send("enable")
    }

    pub fn disable(&mut self) -> Result<()> {
        self.send("disable")
    }
}

/// What [`record`] gives: the child's standard output, the profile, and the copy of it
/// `FLOWHOST_BENCH_PERF_KEEP` asked for.
pub struct Recorded {
    pub stdout: String,
    pub data: PathBuf,
    pub kept: Option<PathBuf>,
}

/// Runs `child` (the bench re-executed with `--child MODE`) under `perf record`. `mode` names
/// the kept copy.
pub fn record(child: &mut Command, dir: &Path, mode: &str) -> Result<Recorded> {
    let data = dir.join("perf.data");
    let (ctl, ack) = (dir.join("ctl.fifo"), dir.join("ack.fifo"));
    for f in [&ctl, &ack] {
        let c = std::ffi::CString::new(f.as_os_str().as_encoded_bytes())?;
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            bail!(
                "mkfifo {}: {}",
                f.display(),
                std::io::Error::last_os_error()
            );
        }
    }
    let mut cmd = Command::new("perf");
    cmd.arg("record")
        .args(["-F", "999", "-q", "-D", "-1"])
        .arg(format!(
            "--control=fifo:{},{}",
            ctl.display(),
            ack.display()
        ))
        .arg("-o")
        .arg(&data)
        .arg("--")
        .arg(child.get_program())
        .args(child.get_args())
        .env(CTL_ENV, &ctl)
        .env(ACK_ENV, &ack);
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot run perf record")?;
    if !out.status.success() {
        bail!("perf record failed ({})", out.status);
    }
    // For a closer look with `perf report`: FLOWHOST_BENCH_PERF_KEEP=DIR keeps the data.
    let mut kept = None;
    if let Some(keep) = std::env::var_os("FLOWHOST_BENCH_PERF_KEEP") {
        let keep = Path::new(&keep);
        std::fs::create_dir_all(keep).with_context(|| {
            format!("FLOWHOST_BENCH_PERF_KEEP: cannot create {}", keep.display())
        })?;
        let path = keep.join(format!("perf-{mode}-{}.data", std::process::id()));
        std::fs::copy(&data, &path).with_context(|| {
            format!(
                "FLOWHOST_BENCH_PERF_KEEP: cannot copy the profile to {}",
                path.display()
            )
        })?;
        eprintln!("flowhost-bench: kept {}", path.display());
        kept = Some(path);
    }
    Ok(Recorded {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        data,
        kept,
    })
}

/// Beside a kept profile, `NAME.flows`: which flow each compiled `.cwasm` file is, one
/// `FILE FLOW` per line (for `tests/bench/perf-guest.py`).
pub fn keep_flow_names(kept: &Path, names: &BTreeMap<String, String>) -> Result<()> {
    let path = kept.with_extension("flows");
    let text: String = names
        .iter()
        .map(|(file, flow)| format!("{file} {flow}\n"))
        .collect();
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// One bucket of the profile.
#[derive(Debug, Clone, Default)]
pub struct Bucket {
    pub name: &'static str,
    pub pct: f64,
}

/// The profile: buckets in a fixed order, and guest code per flow.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub samples: u64,
    pub buckets: Vec<Bucket>,
    pub guest_by_flow: Vec<(String, f64)>,
}

const BUCKETS: [&str; 13] = [
    "simulator (its own threads)",
    "guest code (compiled WASM of the flows)",
    "WASM runtime (wasmtime: instantiation, calls, lifting/lowering, builtins)",
    "flowhost host code (runtime, capabilities, bindings)",
    "SQLite (C) + rusqlite",
    "JSON (serde_json in the host / the bench)",
    "HTTP client (reqwest, hyper, http)",
    "async runtime + locks (tokio, futures, std sync)",
    "bench's own code (native: enrichment, loop)",
    "Rust std/alloc (collections, strings, fmt)",
    "libc (malloc/free, memcpy, ...)",
    "kernel: scheduling and wake-ups (context switches, futex)",
    "kernel: other (file writes, memory and page tables, syscalls)",
];

/// Kernel functions of switching threads and waking them.
fn is_sched(sym: &str) -> bool {
    [
        "finish_task_switch",
        "_raw_spin_unlock_irq",
        "__schedule",
        "schedule",
        "futex",
        "try_to_wake_up",
        "wake_up",
        "pick_next",
        "enqueue",
        "dequeue",
        "update_curr",
        "exit_to_user_mode",
        "irqentry_exit",
        "rseq",
    ]
    .iter()
    .any(|p| sym.contains(p))
}

fn is_sim_thread(comm: &str) -> bool {
    comm == "asa-sim" || comm.starts_with("tokio-")
}

fn bucket(comm: &str, dso: &str, sym: &str) -> usize {
    if is_sim_thread(comm) {
        return 0;
    }
    if dso.ends_with(".cwasm") {
        return if sym.starts_with("wasmtime_") { 2 } else { 1 };
    }
    if dso.starts_with("[kernel") || dso == "[vdso]" {
        return if is_sched(sym) { 11 } else { 12 };
    }
    if dso.starts_with("libc") || dso.starts_with("libm") || dso.starts_with("ld-linux") {
        return 10;
    }
    let has = |p: &str| sym.contains(p);
    if has("rusqlite") || has("libsqlite3_sys") {
        return 4;
    }
    if has("serde_json") || has("serde_core") || has("serde::") {
        return 5;
    }
    if has("hyper") || has("reqwest") || has("http::") || has("h2::") || has("mio::") {
        return 6;
    }
    if has("wasmtime") || has("cranelift") || has("wasm[") || has("wiggle") || has("wit_bindgen") {
        return 2;
    }
    if has("flowhost_bench::") {
        return 8;
    }
    if has("flowhost::") {
        return 3;
    }
    if has("tokio::") || has("futures") || has("std::sys::sync") || has("parking_lot") {
        return 7;
    }
    if sym.contains("::") || sym.starts_with('<') || sym.starts_with("_ZN") {
        return 9;
    }
    // C code linked into the binary: the bundled SQLite (no TLS on loopback).
    4
}

/// Reads `perf report` of `data`; `names` maps a `.cwasm` file name to its flow.
pub fn report(data: &Path, names: &BTreeMap<String, String>) -> Result<Profile> {
    // Shares are computed here from each line's period (perf's own percentages need not add
    // up to 100 when sampling was paused and resumed).
    let out = Command::new("perf")
        .arg("report")
        .arg("-i")
        .arg(data)
        .args([
            "--stdio",
            "--no-children",
            "-F",
            "period,sample,comm,dso,sym",
            "-t",
            "|",
            "-q",
            "--percent-limit",
            "0",
        ])
        .output()
        .context("cannot run perf report")?;
    if !out.status.success() {
        bail!(
            "perf report failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut period = [0.0f64; BUCKETS.len()];
    let mut by_flow: BTreeMap<String, f64> = BTreeMap::new();
    let mut samples = 0u64;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        if f.len() < 5 {
            continue;
        }
        let Ok(p) = f[0].parse::<f64>() else {
            continue;
        };
        samples += f[1].parse::<u64>().unwrap_or(0);
        let (comm, dso) = (f[2], f[3]);
        let sym = f[4..].join("|");
        let sym = sym
            .strip_prefix("[.] ")
            .or_else(|| sym.strip_prefix("[k] "))
            .unwrap_or(&sym);
        let b = bucket(comm, dso, sym);
        period[b] += p;
        if b == 1 {
            let flow = names.get(dso).cloned().unwrap_or_else(|| dso.to_string());
            *by_flow.entry(flow).or_default() += p;
        }
    }
    let total: f64 = period.iter().sum::<f64>().max(1.0);
    let pct: Vec<f64> = period.iter().map(|p| p * 100.0 / total).collect();
    for v in by_flow.values_mut() {
        *v = *v * 100.0 / total;
    }
    let mut guest_by_flow: Vec<(String, f64)> = by_flow.into_iter().collect();
    guest_by_flow.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(Profile {
        samples,
        buckets: BUCKETS
            .iter()
            .zip(pct)
            .map(|(name, pct)| Bucket { name, pct })
            .collect(),
        guest_by_flow,
    })
}
