//! The `flowhost` command line: list, run, history and table commands over the library.
//! Exit codes: 0 success, 1 a flow failed, 2 usage or configuration error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};

use flowhost::config::Config;
use flowhost::history::{RunStatus, Trigger};
use flowhost::terminal::Terminal;

/// Every log line and printed error passes here: secrets redacted, control characters escaped
/// (see `flowhost::terminal`). It knows the environment's secrets from the start and every
/// secret once the runtime is open.
static TERMINAL: std::sync::LazyLock<Terminal> = std::sync::LazyLock::new(|| {
    Terminal::new(
        flowhost::secrets::Secrets::from_env()
            .map(|s| s.redactor())
            .unwrap_or_default(),
    )
});

#[derive(Parser)]
#[command(
    name = "flowhost",
    version,
    about = "Runs Okta-Workflows-style flows compiled to WebAssembly components"
)]
struct Cli {
    /// Config file (default: flowhost.yaml in the working directory, if present).
    #[arg(long, global = true, env = "FLOWHOST_CONFIG")]
    config: Option<PathBuf>,
    /// SQLite database file (tables and run history).
    #[arg(long, global = true, env = "FLOWHOST_DB")]
    db: Option<PathBuf>,
    /// A folder of flows (NAME.wasm + NAME.yaml); repeat for several.
    #[arg(long = "flows", global = true)]
    flows: Vec<PathBuf>,
    /// A folder of table schemas (*.yaml); repeat for several.
    #[arg(long = "tables", global = true)]
    tables: Vec<PathBuf>,
    /// More output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lists the flows with their title, schedule and grants, and the ones that failed to load.
    List,
    /// Runs a flow and prints its output JSON.
    Run {
        name: String,
        /// Input JSON (default `{}`).
        #[arg(long, conflicts_with = "input_file")]
        input: Option<String>,
        /// Read the input JSON from a file (`-` for standard input).
        #[arg(long)]
        input_file: Option<PathBuf>,
        /// Keep running what the flow requests (schedule.request-run) until nothing is pending.
        #[arg(long)]
        until_idle: bool,
        /// If the flow's exclusive group is held by another run (a `serve`, another `run`),
        /// fail at once (exit 1, recorded as `skipped`) instead of waiting for it.
        #[arg(long)]
        no_wait: bool,
    },
    /// Runs the scheduled flows until SIGINT/SIGTERM, reloading changed flow folders.
    Serve {
        /// Do not watch the flow folders for changes.
        #[arg(long)]
        no_reload: bool,
    },
    /// Shows run history, newest first.
    History {
        #[command(subcommand)]
        show: Option<HistoryCmd>,
        /// Only runs of this flow.
        flow: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Lists, shows, exports and imports tables.
    Table {
        #[command(subcommand)]
        cmd: TableCmd,
    },
    /// Switches a flow on or off for `serve` (kept in the database; `run` runs it anyway).
    Flow {
        #[command(subcommand)]
        cmd: FlowCmd,
    },
    /// Per flow: enabled, schedule, last run, consecutive failures, next tick; and how far
    /// ASA audit collection has got. Reads only; works while `serve` runs.
    Status {
        /// One JSON document.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum FlowCmd {
    /// `serve` runs the flow (on its schedule and when another run requests it).
    Enable { name: String },
    /// `serve` no longer runs the flow; a run already going finishes.
    Disable { name: String },
}

#[derive(Subcommand)]
enum HistoryCmd {
    /// One run in full: input, output, error, logs and child calls.
    Show { run: i64 },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// CSV with the schema's columns as header; an empty cell is "" in a text column and null
    /// in any other (CSV cannot tell them apart).
    Csv,
    /// One JSON object per line: an exact copy, nulls included.
    Jsonl,
}

#[derive(Subcommand)]
enum TableCmd {
    /// Every table with its row count.
    List,
    /// The first rows of a table.
    Show {
        name: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Writes every row as CSV or JSON lines.
    Export {
        name: String,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Inserts rows from a CSV or JSON-lines file (by extension), all or nothing.
    Import { name: String, file: PathBuf },
}

/// An error that is the user's to fix (exit 2) rather than a flow failure (exit 1).
struct Usage(anyhow::Error);

/// mimalloc instead of glibc's malloc: a run allocates and frees many small strings and JSON
/// values (measured in the ingest benchmark: see the README's Performance section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // Every dropped wasmtime store builds an error; backtraces make that 30-55% slower.
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let cli = Cli::parse();
    // A server's log is its output: `serve` shows info by default, other commands warnings.
    let serving = matches!(cli.command, Command::Serve { .. });
    init_tracing(cli.verbose + u8::from(serving), cli.quiet);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(Usage(e)) => {
            TERMINAL.eprintln(&format!("error: {e:#}"));
            ExitCode::from(2)
        }
    }
}

fn init_tracing(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default},cranelift=warn,wasmtime=warn"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(TERMINAL.clone())
        .with_ansi(false)
        .with_target(false)
        .init();
}

fn load_config(cli: &Cli) -> Result<Config, Usage> {
    let mut cfg = match &cli.config {
        Some(p) => Config::load(p).map_err(|e| Usage(e.into()))?,
        None if std::path::Path::new("flowhost.yaml").exists() => {
            Config::load(std::path::Path::new("flowhost.yaml")).map_err(|e| Usage(e.into()))?
        }
        None => Config::default(),
    };
    if let Some(db) = &cli.db {
        cfg.db = db.clone();
    }
    if !cli.flows.is_empty() {
        cfg.flows = cli.flows.clone();
    }
    if !cli.tables.is_empty() {
        cfg.tables = cli.tables.clone();
    }
    Ok(cfg)
}

async fn dispatch(cli: Cli) -> Result<ExitCode, Usage> {
    let cfg = load_config(&cli)?;
    let quiet = cli.quiet;
    let usage = |e: anyhow::Error| Usage(e);
    let config = |e: flowhost::config::ConfigError| Usage(e.into());
    let store = |e: flowhost::store::StoreError| Usage(e.into());
    // The commands that only read (list, history, table list|show|export) never migrate,
    // write or wait for a writer.
    match cli.command {
        Command::List => {
            let registry = cfg.load_registry().map_err(config)?;
            let switches = match flowhost::status::open_history(&cfg.db).map_err(store)? {
                Some(h) => h.switches().map_err(store)?,
                None => Default::default(),
            };
            quiet_on_closed_stdout(cmd_list(&registry, &switches)).map_err(usage)
        }
        Command::Status { json } => {
            let (schemas, _) = cfg.check().map_err(config)?;
            let registry = cfg.load_registry().map_err(config)?;
            let history = flowhost::status::open_history(&cfg.db).map_err(store)?;
            let tables = flowhost::status::open_store(&cfg.db, schemas).map_err(store)?;
            let status = flowhost::status::snapshot(
                &registry,
                history.as_ref(),
                tables.as_ref(),
                std::time::SystemTime::now(),
            )
            .map_err(|e| usage(e.into()))?;
            quiet_on_closed_stdout(cmd_status(&status, json)).map_err(usage)
        }
        Command::Flow { cmd } => {
            let (name, enabled) = match cmd {
                FlowCmd::Enable { name } => (name, true),
                FlowCmd::Disable { name } => (name, false),
            };
            check_flow_name(&cfg, &name)?;
            cfg.check().map_err(config)?;
            let path = flowhost::history::history_path_for(&cfg.db);
            let history = flowhost::history::History::open(&path).map_err(store)?;
            history.set_enabled(&name, enabled).map_err(store)?;
            let word = flowhost::status::state_word(enabled);
            quiet_on_closed_stdout(print_line(format_args!("{name} {word} for `serve`")))
                .map_err(usage)
        }
        Command::History {
            show,
            flow,
            limit,
            json,
        } => {
            let path = flowhost::history::history_path_for(&cfg.db);
            let history = flowhost::history::History::open_read_only(&path).map_err(store)?;
            let done = match show {
                Some(HistoryCmd::Show { run }) => cmd_history_show(&history, run),
                None => cmd_history(&history, flow.as_deref(), limit, json),
            };
            quiet_on_closed_stdout(done).map_err(usage)
        }
        Command::Table {
            cmd: TableCmd::Import { name, file },
        } => {
            let (schemas, _) = cfg.check().map_err(config)?;
            let store = flowhost::store::Store::open(&cfg.db, schemas).map_err(store)?;
            known_table(&store, &name).map_err(usage)?;
            let n = flowhost::export::import(&store, &name, &file).map_err(usage)?;
            quiet_on_closed_stdout(print_line(format_args!("imported {n} rows into {name}")))
                .map_err(usage)
        }
        Command::Table { cmd } => {
            let (schemas, _) = cfg.check().map_err(config)?;
            let store = flowhost::store::Store::open_read_only(&cfg.db, schemas).map_err(store)?;
            quiet_on_closed_stdout(cmd_table(&store, cmd)).map_err(usage)
        }
        Command::Run {
            name,
            input,
            input_file,
            until_idle,
            no_wait,
        } => {
            // The input and the flow name are checked before the database is opened (or
            // created), so a typo writes nothing.
            let input = read_input(input, input_file).map_err(usage)?;
            check_flow_name(&cfg, &name)?;
            let runtime = cfg.open_runtime().map_err(config)?;
            TERMINAL.set_redactor(runtime.secrets.redactor());
            warn_if_disabled(&runtime, &name, quiet);
            runtime.leases.set_label(&format!("flowhost run {name}"));
            runtime.leases.set_wait(!no_wait);
            cmd_run(&runtime, &name, &input, until_idle).await
        }
        Command::Serve { no_reload } => {
            let shutdown = shutdown_signal();
            // One `serve` per database, held until this process ends.
            cfg.check().map_err(config)?;
            let leases = flowhost::lease::Leases::for_db(&cfg.db);
            leases.set_label("flowhost serve");
            let _serving = leases.serve().map_err(|e| {
                usage(anyhow::anyhow!(
                    "cannot serve: {e} (one `flowhost serve` per database; stop that one first)"
                ))
            })?;
            let runtime = cfg.open_runtime().map_err(config)?;
            TERMINAL.set_redactor(runtime.secrets.redactor());
            runtime.leases.set_label("flowhost serve");
            let defaults = flowhost::scheduler::ServeOptions::default();
            let opts = flowhost::scheduler::ServeOptions {
                reload_every: defaults.reload_every.filter(|_| !no_reload),
                ..defaults
            };
            let summary = flowhost::scheduler::serve(runtime, cfg, opts, shutdown).await;
            eprintln!(
                "flowhost serve: {} runs ({} failed, {} skipped)",
                summary.runs, summary.failed, summary.skipped
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Whether `e` comes from writing to a closed pipe (`flowhost ... | head`).
fn is_closed_stdout(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == Some(BrokenPipe)
            || cause.downcast_ref::<csv::Error>().is_some_and(
                |e| matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == BrokenPipe),
            )
    })
}

/// A command whose reader went away (`flowhost history | head`) ends quietly with 0, as
/// standard tools do: the reader has what it wanted.
fn quiet_on_closed_stdout(done: anyhow::Result<ExitCode>) -> anyhow::Result<ExitCode> {
    match done {
        Err(e) if is_closed_stdout(&e) => Ok(ExitCode::SUCCESS),
        other => other,
    }
}

/// One line on standard output; a write error (a closed pipe) is returned, never a panic.
fn print_line(line: std::fmt::Arguments<'_>) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Listens for SIGINT and SIGTERM from the moment it is called (before `serve` starts any
/// run: a signal in between must not kill the process with the default action) and returns a
/// future that resolves on the first one; a second one exits at once (an unfinished run's
/// transaction is rolled back by SQLite).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let streams = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = streams else {
            eprintln!("flowhost serve: cannot listen for signals; stop it with SIGKILL");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!(
            "flowhost serve: stopping after the running flows finish (signal again to stop now)"
        );
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            std::process::exit(130);
        });
    }
}

/// Whether the flows folders have a loadable flow `name` (reads manifests only; writes nothing).
fn check_flow_name(cfg: &Config, name: &str) -> Result<(), Usage> {
    let schemas = flowhost::schema::Schemas::load_dirs(&cfg.tables).map_err(|e| Usage(e.into()))?;
    let blob_stores = cfg.blobs.keys().cloned().collect();
    let registry =
        flowhost::registry::Registry::load(&cfg.flows, &schemas, &cfg.grants, &blob_stores);
    if registry.get(name).is_none() {
        let e = flowhost::runtime::RunError::unknown_flow(&registry, name);
        return Err(Usage(e.into()));
    }
    Ok(())
}

fn read_input(input: Option<String>, file: Option<PathBuf>) -> anyhow::Result<String> {
    let (text, what) = match (input, file) {
        (Some(i), _) => (i, "--input".to_string()),
        (None, Some(f)) if f.as_os_str() == "-" => (
            std::io::read_to_string(std::io::stdin())
                .context("--input-file -: cannot read standard input")?,
            "--input-file - (standard input)".to_string(),
        ),
        (None, Some(f)) => (
            std::fs::read_to_string(&f).with_context(|| {
                format!(
                    "{}: cannot read the input file (fix the --input-file path)",
                    f.display()
                )
            })?,
            format!("{}: --input-file", f.display()),
        ),
        (None, None) => return Ok("{}".into()),
    };
    if let Err(e) = flowhost::json::parse(&text) {
        bail!(
            "{what} is not valid JSON: {e} (give one JSON value, e.g. '{{\"asaTeam\": \"my-team\"}}')"
        );
    }
    Ok(text)
}

/// Says on stderr (unless `-q`) that `name` is disabled for `serve`, when it is: `run` runs
/// it anyway.
fn warn_if_disabled(rt: &flowhost::runtime::Runtime, name: &str, quiet: bool) {
    let Ok(flow) = rt.flow(name) else {
        return;
    };
    let switch = rt.history.switch(name).unwrap_or(None);
    if quiet || flowhost::switches::effective(&flow.manifest, switch) {
        return;
    }
    TERMINAL.eprintln(&format!(
        "warning: {name} is disabled for `serve` (`flowhost flow enable {name}` turns it on); running it now anyway"
    ));
}

fn cmd_status(status: &flowhost::status::Status, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        return print_line(format_args!("{}", serde_json::to_string_pretty(status)?));
    }
    let mut out = std::io::stdout().lock();
    for line in status.to_text().lines() {
        writeln!(out, "{}", TERMINAL.clean(line))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_list(
    reg: &flowhost::registry::Registry,
    switches: &std::collections::BTreeMap<String, bool>,
) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    for f in reg.iter() {
        let m = &f.manifest;
        let schedule = m
            .schedule
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_else(|| "on demand".into());
        let title = TERMINAL.clean(&m.title);
        let enabled = flowhost::switches::effective(m, switches.get(&m.name).copied());
        let state = flowhost::status::state_word(enabled);
        writeln!(out, "{:<8} {:<40} {:<24} {state}", m.name, title, schedule)?;
        writeln!(out, "         grants: {}", m.grants.summary())?;
    }
    if reg.is_empty() {
        writeln!(out, "no flows loaded")?;
    }
    if !reg.errors.is_empty() {
        writeln!(out, "\nnot loaded:")?;
        for e in &reg.errors {
            writeln!(out, "  {}", TERMINAL.clean(e))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

async fn cmd_run(
    rt: &std::sync::Arc<flowhost::runtime::Runtime>,
    name: &str,
    input: &str,
    until_idle: bool,
) -> Result<ExitCode, Usage> {
    let mut queue = std::collections::VecDeque::from([flowhost::runtime::RunRequest {
        flow: name.to_string(),
        input: input.to_string(),
        delay: std::time::Duration::ZERO,
    }]);
    let progress = until_idle.then(|| flowhost::progress::RunProgress::new(name));
    let mut trigger = Trigger::Cli;
    let mut last_output = None;
    while let Some(req) = queue.pop_front() {
        if !req.delay.is_zero() {
            tokio::time::sleep(req.delay).await;
        }
        let report = rt
            .run(&req.flow, &req.input, trigger)
            .await
            .map_err(|e| Usage(e.into()))?;
        if let Some(p) = &progress {
            p.record(&report);
        }
        if !report.ok() {
            if let Some(p) = &progress {
                p.finish();
            }
            let status = match report.status {
                RunStatus::Timeout => "timed out",
                RunStatus::Skipped => "not run",
                _ => "failed",
            };
            TERMINAL.eprintln(&format!(
                "error: {} {status} (run {}): {}",
                report.flow,
                report.id,
                report.error.as_deref().unwrap_or("unknown error")
            ));
            return Ok(ExitCode::from(1));
        }
        last_output = report.output.clone();
        if until_idle {
            queue.extend(report.requests.iter().cloned());
        }
        trigger = Trigger::Request;
    }
    if let Some(p) = &progress {
        p.finish();
    }
    if let Some(out) = last_output {
        let pretty = serde_json::from_str::<serde_json::Value>(&out)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or(out);
        return quiet_on_closed_stdout(print_line(format_args!("{pretty}"))).map_err(Usage);
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_history(
    history: &flowhost::history::History,
    flow: Option<&str>,
    limit: u32,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let runs = history.list(flow, limit)?;
    let mut out = std::io::stdout().lock();
    if json {
        for r in runs {
            writeln!(out, "{}", serde_json::to_string(&r)?)?;
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:>6} {:<8} {:<8} {:<8} {:<24} {:>9}  ERROR",
        "RUN", "FLOW", "TRIGGER", "STATUS", "STARTED", "MS"
    )?;
    for r in runs {
        let ms = flowhost::history::duration_ms(&r)
            .map(|m| m.to_string())
            .unwrap_or_else(|| "-".into());
        let err = r
            .error
            .as_deref()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("");
        writeln!(
            out,
            "{:>6} {:<8} {:<8} {:<8} {:<24} {:>9}  {}",
            r.id,
            r.flow,
            r.trigger.to_string(),
            r.status.to_string(),
            r.started,
            ms,
            TERMINAL.clean(err)
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_history_show(history: &flowhost::history::History, id: i64) -> anyhow::Result<ExitCode> {
    let Some(r) = history.get(id)? else {
        bail!("no run {id} in history")
    };
    print_line(format_args!("{}", serde_json::to_string_pretty(&r)?))
}

/// Fails with "no table `X` (did you mean `Y`?)" unless the schemas define `name`.
fn known_table(store: &flowhost::store::Store, name: &str) -> anyhow::Result<()> {
    if store.schemas().get(name).is_none() {
        let hint = store
            .schemas()
            .suggest(name)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        bail!("no table `{name}`{hint}");
    }
    Ok(())
}

/// `table list|show|export` (import is answered in [`dispatch`]: it writes).
fn cmd_table(store: &flowhost::store::Store, cmd: TableCmd) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cmd {
        TableCmd::List => {
            for name in store.schemas().names() {
                match store.row_count(name) {
                    Ok(n) => writeln!(out, "{name:<28} {n:>10} rows")?,
                    Err(flowhost::store::TableError::NotFound(_)) => {
                        writeln!(out, "{name:<28} {:>10} (not in the database yet)", 0)?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        TableCmd::Show { name, limit } => {
            known_table(store, &name)?;
            let mut n = 0;
            store.export_rows(&name, |row| -> anyhow::Result<bool> {
                n += 1;
                writeln!(out, "{}", serde_json::to_string(&row)?)?;
                Ok(n < limit)
            })?;
        }
        TableCmd::Export {
            name,
            format,
            out: file,
        } => {
            known_table(store, &name)?;
            drop(out);
            flowhost::export::export(store, &name, matches!(format, Format::Csv), file.as_deref())?;
            return Ok(ExitCode::SUCCESS);
        }
        TableCmd::Import { name, .. } => {
            bail!("table import of `{name}` needs a writable database")
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
