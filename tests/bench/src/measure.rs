//! Measuring: process and thread CPU time, the simulator's share of it, peak RSS of child
//! processes (wait4), database size and a digest of the stored rows.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

fn timeval(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6
}

/// User + system CPU seconds of this process so far (every thread, living or exited).
pub fn process_cpu() -> f64 {
    // SAFETY: getrusage fills the struct we pass; a zeroed rusage is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    timeval(ru.ru_utime) + timeval(ru.ru_stime)
}

/// CPU seconds of the calling thread so far.
pub fn thread_cpu() -> f64 {
    // SAFETY: clock_gettime fills the timespec we pass.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Starts this process's peak resident set (`VmHWM`) afresh from what is resident now, so that
/// [`self_peak_rss_kb`] measures what comes after: a drain's peak, not a higher one while the
/// flows were compiled before it. (What the compilation leaves resident still counts: on a
/// cold compile cache the chain starts its drain at ~156 MB resident instead of ~59 MB.)
/// Where `/proc` refuses (a read-only mount), it says so and the peak keeps counting from the
/// start: a figure that is too high, never a failed benchmark.
pub fn reset_peak_rss() {
    // `5` resets the peak (Linux 4.0 and later, proc(5)).
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!(
            "flowhost-bench: warning: cannot reset the peak RSS through /proc/self/clear_refs ({e}): the drain's peak includes what came before it"
        );
    }
}

/// Peak resident set of this process so far (`VmHWM`), in KiB.
pub fn self_peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Whether a thread (by its `comm` name) belongs to the in-process simulator: its own thread
/// (`asa-sim`) and the workers of its tokio runtime, which keep tokio's default name
/// (`tokio-runtime-worker` or `tokio-rt-worker`, depending on the tokio version). The bench
/// names its own runtime's threads `bench-worker`, so nothing else has that name.
fn is_sim_thread(comm: &str) -> bool {
    comm == "asa-sim" || comm.starts_with("tokio-")
}

/// CPU seconds of one thread from `/proc/self/task/TID`: `schedstat` (nanoseconds) where the
/// kernel has it, else `stat` utime + stime (clock ticks).
fn task_cpu(dir: &Path) -> Option<f64> {
    if let Ok(s) = std::fs::read_to_string(dir.join("schedstat")) {
        if let Some(ns) = s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        {
            return Some(ns as f64 / 1e9);
        }
    }
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    // Fields after the `(comm)`, which may hold spaces: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(ticks as f64 / hz)
}

/// CPU seconds used so far by the simulator's threads in this process.
pub fn sim_cpu() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut total = 0.0;
    for e in entries.flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if is_sim_thread(comm.trim()) {
            total += task_cpu(&e.path()).unwrap_or(0.0);
        }
    }
    total
}

/// Process CPU and simulator CPU at one instant.
#[derive(Clone, Copy)]
pub struct CpuMark {
    process: f64,
    sim: f64,
}

impl CpuMark {
    pub fn now() -> CpuMark {
        CpuMark {
            process: process_cpu(),
            sim: sim_cpu(),
        }
    }

    /// (client CPU, simulator CPU) since `self`: client = the whole process minus the
    /// simulator's threads.
    pub fn since(&self) -> (f64, f64) {
        let now = CpuMark::now();
        let sim = now.sim - self.sim;
        ((now.process - self.process - sim).max(0.0), sim)
    }
}

/// What a finished child process left: its standard output, exit code and resource usage.
pub struct ChildRun {
    pub stdout: String,
    pub code: i32,
    pub wall: Duration,
    /// Peak RSS of the child itself (not of its own children), KiB.
    pub peak_rss_kb: u64,
    /// User + system CPU seconds of the child itself.
    pub cpu_s: f64,
}

/// Runs `cmd` to completion (stdout captured, stderr passed through) and reaps it with
/// `wait4`, which reports that one child's peak RSS and CPU time.
pub fn run_child(cmd: &mut Command) -> Result<ChildRun> {
    let started = std::time::Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout)?;
    }
    let mut status: libc::c_int = 0;
    // SAFETY: a zeroed rusage is valid; wait4 fills it for the child we started.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            bail!("wait4({pid}): {err}");
        }
    }
    let wall = started.elapsed();
    // `child` was reaped by wait4 above; dropping the handle does not wait again.
    drop(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Ok(ChildRun {
        stdout,
        code,
        wall,
        peak_rss_kb: ru.ru_maxrss as u64,
        cpu_s: timeval(ru.ru_utime) + timeval(ru.ru_stime),
    })
}

/// Size of a SQLite database after folding its WAL back in: the main file plus whatever WAL is
/// left (nothing once the checkpoint succeeds).
pub fn db_size(path: &Path) -> Result<u64> {
    {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(30))?;
        let _: (i64, i64, i64) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    }
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    Ok(size(path) + size(Path::new(&wal)))
}

/// The enriched columns of Audit Events (everything but `raw_event`, whose key order differs
/// between serde_json and Python's json while meaning the same).
pub const DIGEST_COLUMNS: &str = r#""id", "timestamp", "type", "actor", "user", "client", "group", "project", "hostname", "server", "gateway", "from_addr""#;

/// FNV-1a (64 bits) over every row's enriched columns, in id order: equal digests mean the
/// modes stored the same rows with the same enrichment strings. Returns (rows, digest).
pub fn digest(path: &Path) -> Result<(u64, String)> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let table = flowhost::schema::sql_table_name("Audit Events");
    let mut stmt = conn.prepare(&format!(
        "SELECT {DIGEST_COLUMNS} FROM \"{table}\" ORDER BY \"id\""
    ))?;
    let mut rows = stmt.query([])?;
    let mut d = RowDigest::default();
    while let Some(r) = rows.next()? {
        for i in 0..12 {
            match r.get_ref(i)? {
                rusqlite::types::ValueRef::Text(t) => d.field(Some(t)),
                rusqlite::types::ValueRef::Null => d.field(None),
                other => d.field(Some(format!("{other:?}").as_bytes())),
            }
        }
        d.end_row();
    }
    Ok(d.finish())
}

/// FNV-1a (64 bits) over rows of fields, fed in id order (see [`digest`]); shared by the
/// SQLite and PostgreSQL readers so that equal rows give equal digests on both.
pub struct RowDigest {
    h: u64,
    rows: u64,
}

impl Default for RowDigest {
    fn default() -> RowDigest {
        RowDigest {
            h: 0xcbf2_9ce4_8422_2325,
            rows: 0,
        }
    }
}

impl RowDigest {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.h ^= u64::from(b);
            self.h = self.h.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// One field: its text, or `None` for NULL.
    pub fn field(&mut self, value: Option<&[u8]>) {
        self.feed(value.unwrap_or(b"\x01null"));
        self.feed(b"\x00");
    }

    pub fn end_row(&mut self) {
        self.feed(b"\n");
        self.rows += 1;
    }

    /// (rows, digest).
    pub fn finish(self) -> (u64, String) {
        (self.rows, format!("{:016x}", self.h))
    }
}

/// CPU seconds used so far by process `pid` and every child it has had: its own time, its
/// reaped children's (`cutime`, `cstime`) and its living children's, all from `/proc` in clock
/// ticks. (A PostgreSQL postmaster forks each backend and reaps it, and each backend makes
/// itself a process group leader, so the parent link is what ties them together.)
pub fn tree_cpu(pid: u32) -> f64 {
    /// (ppid, utime + stime, cutime + cstime) in ticks, from `/proc/PID/stat`.
    fn stat(dir: &Path) -> Option<(u32, u64, u64)> {
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // Fields after the `(comm)`, which may hold spaces: state is field 3, ppid 4,
        // utime 14, stime 15, cutime 16, cstime 17.
        let rest = stat.get(stat.rfind(')')? + 2..)?;
        let f: Vec<u64> = rest
            .split_whitespace()
            .skip(1)
            .take(15)
            .map(|v| v.parse::<u64>().unwrap_or(0))
            .collect();
        let at = |i: usize| f.get(i).copied().unwrap_or(0);
        Some((
            u32::try_from(at(0)).ok()?,
            at(10).saturating_add(at(11)),
            at(12).saturating_add(at(13)),
        ))
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut ticks: u64 = 0;
    for e in entries.flatten() {
        let Some(this) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Some((ppid, own, reaped)) = stat(&e.path()) else {
            continue;
        };
        if this == pid {
            ticks = ticks.saturating_add(own).saturating_add(reaped);
        } else if ppid == pid {
            ticks = ticks.saturating_add(own);
        }
    }
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// The median of `v` (mean of the two middle values for an even count); 0 for none.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child that used CPU and was reaped still counts: a PostgreSQL backend that exited
    /// during the drain is part of the server's CPU.
    #[test]
    fn tree_cpu_counts_a_reaped_child() {
        let before = tree_cpu(std::process::id());
        let status = Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(status.success());
        let after = tree_cpu(std::process::id());
        assert!(
            after > before,
            "the reaped child's CPU is missing: {before} s before, {after} s after"
        );
    }
}
