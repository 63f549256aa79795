//! `asa-sim`: run the ASA API simulator until Ctrl-C.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use asa_sim::{LinkStyle, Sim, SimConfig, TeamConfig};
use clap::Parser;

/// Okta Advanced Server Access API simulator (service_token + auditsV2).
#[derive(Parser, Debug)]
#[command(name = "asa-sim", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8088")]
    listen: SocketAddr,
    /// Events existing at start.
    #[arg(long, default_value_t = 1000)]
    events: u64,
    /// Seed for the synthetic data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Events appended per second (0 = off).
    #[arg(long, default_value_t = 0.0)]
    live_rate: f64,
    /// Team name.
    #[arg(long, default_value = asa_sim::DEFAULT_TEAM)]
    team: String,
    /// API key id.
    #[arg(long, default_value = asa_sim::DEFAULT_KEY_ID)]
    key_id: String,
    /// API key secret.
    #[arg(long, default_value = asa_sim::DEFAULT_KEY_SECRET, hide_default_value = true)]
    key_secret: String,
    /// Also print the key secret on the start-up line.
    #[arg(long)]
    print_secret: bool,
    /// Bearer-token lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    token_ttl_secs: u64,
    /// Requests per hour before 429 (0 = unlimited).
    #[arg(long, default_value_t = 10_000)]
    rate_limit: u32,
    /// Emit relative Link URLs (/v1/teams/...) instead of absolute ones.
    #[arg(long)]
    relative_links: bool,
    /// Timestamp of event 0 (RFC 3339). Default: so that the initial events end
    /// about now.
    #[arg(long)]
    start: Option<jiff::Timestamp>,
    /// Mean gap between event timestamps in milliseconds. Default: 1000, or
    /// 1000/live-rate when --live-rate is set (timestamps then track the clock).
    #[arg(long)]
    spacing_ms: Option<f64>,
    /// One more team on the same server, `NAME:KEY_ID:KEY_SECRET` (repeatable): --events
    /// events, seed --seed plus its position (1, 2, …), so its ids differ.
    #[arg(long, value_name = "NAME:KEY_ID:KEY_SECRET")]
    extra_team: Vec<String>,
}

/// `--extra-team NAME:KEY_ID:KEY_SECRET` as the `n`-th (from 1) extra team.
fn extra_team(spec: &str, n: u64, args: &Args) -> anyhow::Result<TeamConfig> {
    let mut parts = spec.splitn(3, ':');
    let (Some(team), Some(key_id), Some(key_secret)) = (parts.next(), parts.next(), parts.next())
    else {
        anyhow::bail!("--extra-team {spec:?}: expected NAME:KEY_ID:KEY_SECRET");
    };
    anyhow::ensure!(
        [team, key_id, key_secret].iter().all(|p| !p.is_empty()),
        "--extra-team {spec:?}: NAME, KEY_ID and KEY_SECRET must not be empty"
    );
    Ok(TeamConfig {
        team: team.to_string(),
        key_id: key_id.to_string(),
        key_secret: key_secret.to_string(),
        events: args.events,
        seed: args.seed.wrapping_add(n),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.live_rate.is_finite() && args.live_rate >= 0.0,
        "--live-rate must be >= 0"
    );
    let spacing_ms = match args.spacing_ms {
        Some(ms) => {
            anyhow::ensure!(ms.is_finite() && ms > 0.0, "--spacing-ms must be > 0");
            ms
        }
        None if args.live_rate > 0.0 => 1000.0 / args.live_rate,
        None => 1000.0,
    };
    let spacing = Duration::from_secs_f64(spacing_ms / 1000.0).max(Duration::from_nanos(1));
    let start = match args.start {
        Some(t) => t,
        None => {
            let back = spacing
                .checked_mul(u32::try_from(args.events).unwrap_or(u32::MAX))
                .unwrap_or(Duration::from_secs(86_400 * 365));
            let back = jiff::SignedDuration::try_from(back).context("--events too large")?;
            jiff::Timestamp::now()
                .checked_sub(back)
                .context("start time out of range")?
        }
    };
    let extra_teams = (1u64..)
        .zip(&args.extra_team)
        .map(|(n, spec)| extra_team(spec, n, &args))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cfg = SimConfig {
        extra_teams,
        team: args.team,
        key_id: args.key_id,
        key_secret: args.key_secret,
        events: args.events,
        seed: args.seed,
        token_ttl: Duration::from_secs(args.token_ttl_secs),
        rate_limit_per_hour: args.rate_limit,
        live_events_per_sec: args.live_rate,
        link_style: if args.relative_links {
            LinkStyle::Relative
        } else {
            LinkStyle::Absolute
        },
        start_time: start,
        event_spacing: spacing,
        ..Default::default()
    };
    // Installed before the server listens: once it answers, SIGINT or SIGTERM stops it cleanly.
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let sim = Sim::start_on(cfg, args.listen).await?;
    let mut line = format!(
        "asa-sim listening base_url={} team={} key_id={} events={} seed={} live_rate={}",
        sim.base_url(),
        sim.team(),
        sim.key_id(),
        sim.event_count(),
        args.seed,
        args.live_rate
    );
    if args.print_secret {
        line.push_str(&format!(" key_secret={}", sim.key_secret()));
    }
    for spec in &args.extra_team {
        let name = spec.split(':').next().unwrap_or_default();
        if let Some(t) = sim.team_handle(name) {
            line.push_str(&format!(
                "\nasa-sim also serves team={} key_id={} events={}",
                t.team(),
                t.key_id(),
                t.event_count()
            ));
        }
    }
    // A reader that has gone (a closed pipe) is no reason to stop serving: no `println!`,
    // which panics on a write error.
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    drop(out);

    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    let stats = sim.stats();
    eprintln!("asa-sim: shutting down; {stats:?}");
    sim.shutdown().await;
    Ok(())
}
