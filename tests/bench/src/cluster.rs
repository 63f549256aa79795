//! `cluster`: how fast `flowhost serve` nodes on one PostgreSQL database drain the simulator's
//! backlog with M10 scheduled every 300 ms: one node, then three, each on a fresh throwaway
//! server and simulator. The nodes are the release `flowhost` binary as subprocesses; the
//! clock runs from their start until Audit Events holds every event (counted with psql).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::pg::Server;
use crate::report::Item;
use crate::wasm::write_secrets;
use crate::Env;

/// How long a drain may take before the mode gives up.
const DEADLINE: Duration = Duration::from_secs(1800);

/// The node counts measured, in order.
const NODES: [usize; 2] = [1, 3];

/// Kills the nodes when dropped (also on an error half-way).
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Copies flows/dist without O10/O20 (they need blob stores) into `to`, M10 every 300 ms.
fn flows(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("O10.") || name.starts_with("O20.") || !e.file_type()?.is_file() {
            continue;
        }
        std::fs::copy(e.path(), to.join(&name))?;
    }
    let m10 = to.join("M10.yaml");
    let text = std::fs::read_to_string(&m10)?;
    let mut found = false;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            let body = l.trim_start();
            if body.starts_with("every:") {
                found = true;
                format!("{}every: 300ms", &l[..l.len() - body.len()])
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        bail!("{} has no `every:` line", m10.display());
    }
    std::fs::write(&m10, out.join("\n") + "\n")?;
    Ok(())
}

fn cli(bin: &Path, config: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "flowhost {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Seconds `nodes` serve processes take to store `env.events` events.
fn drain(env: &Env, nodes: usize) -> Result<f64> {
    let bin = env.flowhost_bin()?;
    let sim = crate::start_sim(env.events)?;
    let server = Server::start()?;
    let dir = env.tempdir("cluster")?;
    let flow_dir = dir.path().join("flows");
    flows(&env.root.join("flows/dist"), &flow_dir)?;
    let secrets = dir.path().join("secrets.yaml");
    write_secrets(
        &secrets,
        &[
            ("ASA_KEY_ID", sim.key_id()),
            ("ASA_KEY_SECRET", sim.key_secret()),
        ],
    )?;
    let origin = sim.base_url().trim_end_matches('/').to_string();
    let config = dir.path().join("flowhost.yaml");
    std::fs::write(
        &config,
        format!(
            "db: \"{}\"\nflows: [\"{}\"]\ntables: [\"{}\"]\ncache_dir: \"{}\"\n\
             secrets_file: \"{}\"\nbuiltin: false\n\
             grants:\n  U00: {{hosts: [\"{origin}\"]}}\n  M10: {{hosts: [\"{origin}\"]}}\n",
            server.url(),
            flow_dir.display(),
            env.root.join("tables").display(),
            env.cache_dir().display(),
            secrets.display(),
        ),
    )?;
    let team =
        json!({"asaTeam": sim.team(), "asaBaseUrl": sim.base_url(), "searchCount": env.count});
    cli(&bin, &config, &["run", "U02", "--input", &team.to_string()])?;
    cli(&bin, &config, &["run", "U03"])?;
    cli(&bin, &config, &["flow", "enable", "M10"])?;

    let started = Instant::now();
    let mut running = Nodes(Vec::new());
    for _ in 0..nodes {
        running.0.push(
            Command::new(&bin)
                .arg("--config")
                .arg(&config)
                .arg("serve")
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("cannot start {} serve", bin.display()))?,
        );
    }
    loop {
        if server.audit_events()? >= env.events {
            break;
        }
        for c in &mut running.0 {
            if let Some(status) = c.try_wait()? {
                bail!("a serve node exited ({status}) before the drain ended");
            }
        }
        if started.elapsed() > DEADLINE {
            bail!(
                "{nodes} node(s) did not store {} events within {DEADLINE:?}",
                env.events
            );
        }
        // Sampling the row count: the nodes offer no completion event.
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(started.elapsed().as_secs_f64())
}

pub fn run(env: &Env) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    for nodes in NODES {
        let secs = drain(env, nodes)?;
        items.push(Item {
            name: format!("cluster: {nodes} serve node(s), M10 every 300ms"),
            value: env.events as f64 / secs.max(1e-9),
            unit: "events/s".into(),
            samples: vec![],
            note: format!(
                "{} events in {secs:.1} s, from the nodes' start (start-up and schedule gaps included)",
                crate::report::thousands(env.events as f64)
            ),
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copy leaves O10/O20 out and schedules M10 every 300 ms, keeping the indentation.
    #[test]
    fn the_flow_copy_schedules_m10_every_300ms_without_o10_and_o20() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        std::fs::write(
            from.path().join("M10.yaml"),
            "name: M10\nschedule:\n  every: 5m\n",
        )
        .unwrap();
        for f in ["M10.wasm", "O10.yaml", "O20.wasm"] {
            std::fs::write(from.path().join(f), "x").unwrap();
        }
        flows(from.path(), to.path()).unwrap();
        let m10 = std::fs::read_to_string(to.path().join("M10.yaml")).unwrap();
        assert_eq!(m10, "name: M10\nschedule:\n  every: 300ms\n");
        let mut names: Vec<String> = std::fs::read_dir(to.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["M10.wasm", "M10.yaml"]);
    }
}
