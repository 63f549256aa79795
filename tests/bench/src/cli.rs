//! `flowhost list` and `flowhost run U01` as a user runs them: the release binary as a
//! subprocess, on a warm compile cache, median of 10 wall times.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::measure::median;
use crate::report::Item;
use crate::Env;

const REPS: usize = 10;

fn flowhost(bin: &Path, config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn once(bin: &Path, config: &Path, args: &[&str]) -> Result<f64> {
    let started = Instant::now();
    let out = flowhost(bin, config, args).output()?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    if !out.status.success() {
        bail!(
            "flowhost {}: {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(ms)
}

pub fn run(env: &Env) -> Result<Vec<Item>> {
    let bin = env.flowhost_bin()?;
    let dir = env.tempdir("cli")?;
    let cache = dir.path().join("cache");
    let config = dir.path().join("flowhost.yaml");
    let q = |p: &Path| format!("\"{}\"", p.display());
    std::fs::write(
        &config,
        format!(
            "db: {}\nflows: [{}]\ntables: [{}]\ncache_dir: {}\n",
            q(&dir.path().join("flowhost.db")),
            q(&env.root.join("flows/dist")),
            q(&env.root.join("tables")),
            q(&cache)
        ),
    )
    .context("cannot write the config")?;
    // Warm: a team (U01 fails without one), the compile cache for U01/U02, the page cache.
    once(
        &bin,
        &config,
        &["run", "U02", "--input", r#"{"asaTeam": "bench-team"}"#],
    )?;
    let mut items = Vec::new();
    for (name, args) in [
        ("flowhost list", vec!["list"]),
        ("flowhost run U01", vec!["run", "U01"]),
    ] {
        once(&bin, &config, &args)?;
        let mut samples = Vec::with_capacity(REPS);
        for _ in 0..REPS {
            samples.push(once(&bin, &config, &args)?);
        }
        items.push(Item {
            name: format!("{name} (warm cache)"),
            value: median(samples.clone()),
            unit: "ms".into(),
            samples,
            note: "wall of the whole process, target < 100 ms".into(),
        });
    }
    Ok(items)
}
