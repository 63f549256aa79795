//! The `flowhost` command line: list, run, history and table commands over the library.
//! Exit codes: 0 success, 1 a flow failed, 2 usage or configuration error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use flowhost::config::Config;
use flowhost::export::Format;
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
    /// Config file (default: the first of ./flowhost.yaml,
    /// $XDG_CONFIG_HOME/flowhost/flowhost.yaml (~/.config/...), /etc/flowhost/flowhost.yaml).
    #[arg(long, global = true, env = "FLOWHOST_CONFIG")]
    config: Option<PathBuf>,
    /// Folder for the database, run history, compile cache and local archive (default: the
    /// config file's folder, else $XDG_STATE_HOME/flowhost, i.e. ~/.local/state/flowhost).
    #[arg(long, global = true, env = "FLOWHOST_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// The database of tables and run history: an SQLite file, or a `postgres://` URL.
    #[arg(long, global = true, env = "FLOWHOST_DB")]
    db: Option<String>,
    /// A folder of flows (NAME.wasm + NAME.yaml), before the built-in ones; repeat for several.
    #[arg(long = "flows", global = true)]
    flows: Vec<PathBuf>,
    /// A folder of table schemas (*.yaml), before the built-in ones; repeat for several.
    #[arg(long = "tables", global = true)]
    tables: Vec<PathBuf>,
    /// More output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors (and failed runs).
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Log lines as text, or as one JSON object a line (timestamp, level, fields, target).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "FLOWHOST_LOG_FORMAT"
    )]
    log_format: flowhost::logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lists the flows with their title, schedule and grants, and the ones that failed to load.
    List {
        /// One JSON object: `flows` (name, title, schedule, grants) and `not_loaded`.
        #[arg(long)]
        json: bool,
    },
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
    /// Runs the scheduled flows until SIGINT/SIGTERM, reloading changed flow folders (and the
    /// config file on SIGHUP).
    Serve {
        /// Do not watch the flow folders for changes.
        #[arg(long)]
        no_reload: bool,
        /// Serve /healthz, /readyz and /metrics on this address (a bare port such as 9464
        /// means 127.0.0.1:9464); overrides `listen:` in the config.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Shows run history, newest first.
    History {
        #[command(subcommand)]
        show: Option<HistoryCmd>,
        /// Only runs of this flow.
        flow: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// One JSON object per line (input and output as JSON values).
        #[arg(long)]
        json: bool,
    },
    /// Lists, shows, exports and imports tables.
    Table {
        #[command(subcommand)]
        cmd: TableCmd,
    },
    /// Validates the config, table schemas, manifests, secrets and the ASA base URL's grants
    /// without running a flow or writing anything; exit 0 when all is well, 1 otherwise.
    Check {
        /// Also ask ASA for a service token and one page of events (`count=1`).
        #[arg(long)]
        connect: bool,
        /// Print the findings as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Switches a flow on or off for `serve` (kept in the database; `run` runs it anyway).
    Flow {
        #[command(subcommand)]
        cmd: FlowCmd,
    },
    /// Writes a new flow project into DIR (default ./NAME): NAME.yaml (no grants), the source
    /// (its `run` echoes the input and counts the Execution Log), the SDK and the host's WIT.
    New {
        /// The flow's name (letters, digits, - and _).
        name: String,
        /// rust, python or javascript.
        #[arg(long)]
        lang: String,
        /// The project folder: must not exist, or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Builds a flow project into DIR/dist/NAME.wasm with its language's own tools
    /// (componentize-py, npm, cargo) and checks the component against this host.
    Build {
        /// The project folder (default: the current one).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Then copy NAME.wasm and NAME.yaml into this flows folder (safe while `serve` watches it).
        #[arg(long, value_name = "FOLDER")]
        install: Option<PathBuf>,
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
    Show {
        run: i64,
        /// The run as one JSON object (input and output as JSON values).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TableCmd {
    /// Every table with its row count.
    List {
        /// One JSON object: `tables`, each with `name`, `rows` and `in_database`.
        #[arg(long)]
        json: bool,
    },
    /// The first rows of a table.
    Show {
        name: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Writes every row as CSV or JSON lines.
    Export {
        name: String,
        /// Default: from the --out file's extension (.csv, .jsonl, .ndjson), else jsonl.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Inserts rows from a CSV or JSON-lines file (`-`: standard input), all or nothing.
    Import {
        name: String,
        file: PathBuf,
        /// Default: from the file's extension (.csv, .jsonl, .ndjson); jsonl for `-`.
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
}

/// An error that is the user's to fix (exit 2) rather than a flow failure (exit 1).
struct Usage(anyhow::Error);

/// mimalloc instead of glibc's malloc (its settings: `flowhost::allocator`): a run allocates and frees many small strings and JSON
/// values (measured in the ingest benchmark: see the README's Performance section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    flowhost::allocator::configure();
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // Every dropped wasmtime store builds an error; backtraces make that 30-55% slower.
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let cli = Cli::parse();
    // A server's log is its output: `serve` shows info by default, other commands warnings.
    let serving = matches!(cli.command, Command::Serve { .. });
    flowhost::logging::init(
        &TERMINAL,
        &flowhost::logging::LogOptions {
            format: cli.log_format,
            verbose: cli.verbose.saturating_add(u8::from(serving)),
            quiet: cli.quiet,
        },
    );
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

/// The config file in use: `--config`, else `flowhost.yaml` in the working directory.
/// Where the config file and the state are, found once per command (see `flowhost::paths`).
struct Locations {
    file: Option<PathBuf>,
    state: PathBuf,
}

fn locations(cli: &Cli) -> Result<Locations, Usage> {
    use flowhost::paths;
    let env = paths::Env::from_process();
    let file = cli
        .config
        .clone()
        .or_else(|| paths::find_config(&paths::config_candidates(&env)));
    let state = paths::state_dir(cli.state_dir.as_deref(), file.as_deref(), &env)
        .map_err(|e| Usage(e.into()))?;
    tracing::debug!(config = ?file, state = %state.display(), "locations");
    Ok(Locations { file, state })
}

/// Reads the config at `at` with what the command line sets over it (`--db`, `--flows`,
/// `--tables`); `serve` calls it again on a reload.
fn config_reader(
    cli: &Cli,
    at: &Locations,
) -> impl Fn() -> Result<Config, flowhost::config::ConfigError> + Send + Sync + 'static {
    let (db, flows, tables) = (cli.db.clone(), cli.flows.clone(), cli.tables.clone());
    let (file, state) = (at.file.clone(), at.state.clone());
    let state_flag = cli.state_dir.clone();
    move || {
        let mut cfg = match &file {
            Some(p) => Config::load_in(p, state_flag.as_deref())?,
            None => Config::with_state_dir(&state),
        };
        if let Some(db) = &db {
            cfg.db = flowhost::database::Database::parse(db)
                .map_err(|e| flowhost::config::ConfigError::Open(format!("--db: {e}")))?;
        }
        if !flows.is_empty() {
            cfg.flows = flows.clone();
        }
        if !tables.is_empty() {
            cfg.tables = tables.clone();
        }
        Ok(cfg)
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode, Usage> {
    if let Command::Check { connect, json } = cli.command {
        return cmd_check(&cli, connect, json).await.map_err(Usage);
    }
    // Project commands: no config, database or flows folder is read.
    match cli.command {
        Command::New {
            ref name,
            ref lang,
            ref dir,
        } => return cmd_new(name, lang, dir.as_deref()),
        Command::Build {
            ref dir,
            ref install,
        } => return Ok(cmd_build(dir, install.as_deref())),
        _ => {}
    }
    let at = locations(&cli)?;
    let read = config_reader(&cli, &at);
    let cfg = read().map_err(|e| Usage(e.into()))?;
    let reload = flowhost::reload::ConfigReload::new(at.file.as_deref(), read);
    let quiet = cli.quiet;
    let usage = |e: anyhow::Error| Usage(e);
    let config = |e: flowhost::config::ConfigError| Usage(e.into());
    let store = |e: flowhost::store::StoreError| Usage(e.into());
    // The commands that only read (list, history, table list|show|export) never migrate,
    // write or wait for a writer.
    match cli.command {
        Command::List { json } => {
            let registry = cfg.load_registry().map_err(config)?;
            let switches = match cfg.db.open_history_read_only().map_err(store)? {
                Some(h) => h.switches().map_err(store)?,
                None => Default::default(),
            };
            quiet_on_closed_stdout(cmd_list(&registry, &switches, json)).map_err(usage)
        }
        Command::Status { json } => {
            let (schemas, _) = cfg.check().map_err(config)?;
            let registry = cfg.load_registry().map_err(config)?;
            let read = cfg.db.open_read_only(schemas).map_err(store)?;
            let mut status = flowhost::status::snapshot(
                &registry,
                read.history.as_ref(),
                read.store.as_ref(),
                std::time::SystemTime::now(),
            )
            .map_err(|e| usage(e.into()))?;
            if let Some(pg) = &read.pg {
                status.nodes = flowhost::status::nodes(pg).map_err(|e| usage(e.into()))?;
            }
            quiet_on_closed_stdout(cmd_status(&status, json)).map_err(usage)
        }
        Command::Flow { cmd } => {
            let (name, enabled) = match cmd {
                FlowCmd::Enable { name } => (name, true),
                FlowCmd::Disable { name } => (name, false),
            };
            check_flow_name(&cfg, &name)?;
            cfg.check().map_err(config)?;
            let history = cfg.db.open_history().map_err(store)?;
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
            let history = cfg.db.history_read_only();
            if let (None, Some(name)) = (&show, &flow) {
                known_in_history_or_folders(&cfg, history.as_ref().ok(), name)?;
            }
            let history = history.map_err(store)?;
            let done = match show {
                Some(HistoryCmd::Show { run, json }) => cmd_history_show(&history, run, json),
                None => cmd_history(&history, flow.as_deref(), limit, json),
            };
            quiet_on_closed_stdout(done).map_err(usage)
        }
        Command::Table {
            cmd: TableCmd::Import { name, file, format },
        } => {
            let (schemas, _) = cfg.check().map_err(config)?;
            let store = cfg.db.open_store(schemas).map_err(store)?;
            known_table(&store, &name).map_err(usage)?;
            let n = flowhost::export::import(&store, &name, &file, format).map_err(usage)?;
            quiet_on_closed_stdout(print_line(format_args!("imported {n} rows into {name}")))
                .map_err(usage)
        }
        Command::Table { cmd } => {
            let (schemas, _) = cfg.check().map_err(config)?;
            let store = cfg.db.store_read_only(schemas).map_err(store)?;
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
            runtime.secrets.follow(|r| TERMINAL.set_redactor(r));
            warn_if_disabled(&runtime, &name, quiet);
            runtime.leases.set_label(&format!("flowhost run {name}"));
            runtime.leases.set_wait(!no_wait);
            cmd_run(&runtime, &name, &input, until_idle).await
        }
        // Answered before the config is loaded (a config that does not load is a finding).
        Command::Check { .. } | Command::New { .. } | Command::Build { .. } => {
            Err(Usage(anyhow::anyhow!("answered above")))
        }
        Command::Serve { no_reload, listen } => {
            let shutdown = shutdown_signal();
            // One `serve` per SQLite database, held until this process ends (several
            // nodes may serve one PostgreSQL database).
            cfg.check().map_err(config)?;
            let _serving = match cfg.db.sqlite_path() {
                Some(db) => {
                    let leases = flowhost::lease::Leases::for_db(db);
                    leases.set_label("flowhost serve");
                    Some(leases.serve().map_err(|e| {
                        usage(anyhow::anyhow!(
                            "cannot serve: {e} (one `flowhost serve` per database; stop that one first)"
                        ))
                    })?)
                }
                None => None,
            };
            // Bound before anything runs: a port in use is an error at start, not later.
            let listener = flowhost::listener::bind_configured(listen.as_deref(), cfg.listen)
                .await
                .map_err(|e| usage(e.into()))?;
            let runtime = cfg.open_runtime().map_err(config)?;
            runtime.secrets.follow(|r| TERMINAL.set_redactor(r));
            runtime.leases.set_label("flowhost serve");
            let listener = listener.map(|l| l.start(runtime.clone(), &cfg));
            let defaults = flowhost::scheduler::ServeOptions::default();
            if let Err(e) = reload.listen_for_sighup() {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: no config reload");
            }
            let opts = flowhost::scheduler::ServeOptions {
                reload_every: defaults.reload_every.filter(|_| !no_reload),
                config_reload: Some(reload),
                ..defaults
            };
            let summary =
                flowhost::scheduler::serve_watched(runtime, cfg, opts, listener, shutdown).await;
            tracing::info!(
                "flowhost serve: {} runs ({} failed, {} skipped)",
                summary.runs,
                summary.failed,
                summary.skipped
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `flowhost check`: a config that does not load is a finding too (exit 1, not 2).
async fn cmd_check(cli: &Cli, connect: bool, json: bool) -> anyhow::Result<ExitCode> {
    use flowhost::check::Report;
    let at = locations(cli).map_err(|Usage(e)| e)?;
    let path = at.file.clone();
    let report = match config_reader(cli, &at)() {
        Err(e) => Report::config_error(path.as_deref(), &format!("{e:#}")),
        Ok(cfg) => {
            if let Ok(s) = flowhost::secrets::Secrets::load(cfg.secrets_file.as_deref()) {
                s.follow(|r| TERMINAL.set_redactor(r));
            }
            if connect {
                flowhost::check::check_and_connect(&cfg, path.as_deref()).await
            } else {
                flowhost::check::check(&cfg, path.as_deref())
            }
        }
    };
    let code = if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    let print = || -> anyhow::Result<ExitCode> {
        let mut out = std::io::stdout().lock();
        if json {
            writeln!(out, "{}", TERMINAL.clean(&serde_json::to_string(&report)?))?;
        } else {
            for line in report.lines() {
                writeln!(out, "{}", TERMINAL.clean(&line))?;
            }
        }
        out.flush()?;
        Ok(code)
    };
    quiet_on_closed_stdout(print())
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
            tracing::error!("flowhost serve: cannot listen for signals; stop it with SIGKILL");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!(
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
    let schemas = cfg.schemas().map_err(|e| Usage(e.into()))?;
    let blob_stores = cfg.blobs.keys().cloned().collect();
    let registry = cfg.registry(&schemas, &blob_stores);
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

/// `flowhost new`: writes the project, then prints the next steps.
fn cmd_new(name: &str, lang: &str, dir: Option<&std::path::Path>) -> Result<ExitCode, Usage> {
    use flowhost::scaffold::{new, Lang};
    let dir = dir.map_or_else(|| PathBuf::from(name), std::path::Path::to_path_buf);
    let dir = new::create(name, lang, &dir).map_err(|e| Usage(e.into()))?;
    let lang = Lang::parse(lang).unwrap_or(Lang::Rust);
    quiet_on_closed_stdout(print_line(format_args!(
        "{}",
        new::next_steps(name, lang, &dir).trim_end()
    )))
    .map_err(Usage)
}

/// `flowhost build`: exit 2 for what must be fixed first (a tool to install, the project's
/// layout), 1 when the build or the check of the component failed.
fn cmd_build(dir: &std::path::Path, install: Option<&std::path::Path>) -> ExitCode {
    use flowhost::scaffold::{build, install as inst};
    let built = match build::build(dir) {
        Ok(b) => b,
        Err(e) => {
            TERMINAL.eprintln(&format!("error: {e}"));
            return ExitCode::from(e.exit_code());
        }
    };
    let mut lines = vec![format!("built {}", built.wasm.display())];
    if let Some(folder) = install {
        match inst::install(&built.name, &built.wasm, &built.manifest, folder) {
            Ok(_) => lines.push(format!(
                "installed {} into {}",
                built.name,
                folder.display()
            )),
            Err(e) => {
                TERMINAL.eprintln(&format!("error: {e}"));
                return ExitCode::from(1);
            }
        }
    }
    match quiet_on_closed_stdout(print_line(format_args!("{}", lines.join("\n")))) {
        Ok(code) => code,
        Err(e) => {
            TERMINAL.eprintln(&format!("error: {e:#}"));
            ExitCode::from(1)
        }
    }
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
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if json {
        let flows: Vec<serde_json::Value> = reg
            .iter()
            .map(|f| {
                let m = &f.manifest;
                serde_json::json!({
                    "name": m.name,
                    "title": m.title,
                    "schedule": m.schedule.as_ref().map(|s| s.to_string()),
                    "enabled": flowhost::switches::effective(m, switches.get(&m.name).copied()),
                    "from": f.origin(),
                    "grants": m.grants.to_json(),
                    "api": m.grants.api.as_ref().map(|a| serde_json::json!({
                        "token_secret": a.token_secret,
                        "invoke": format!("/api/flows/{}/invoke", m.name),
                    })),
                })
            })
            .collect();
        let doc = serde_json::json!({"flows": flows, "not_loaded": reg.errors});
        writeln!(out, "{}", serde_json::to_string(&doc)?)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
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
        writeln!(out, "         from: {}", TERMINAL.clean(&f.origin()))?;
        if let Some(api) = &m.grants.api {
            writeln!(
                out,
                "         api: POST /api/flows/{}/invoke (token: secret {})",
                m.name, api.token_secret
            )?;
        }
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
    let mut totals = RunTotals::default();
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
        totals.add(report.output.as_deref());
        last_output = report.output.clone();
        if until_idle {
            queue.extend(report.requests.iter().cloned());
        }
        trigger = Trigger::Request;
    }
    if let Some(p) = &progress {
        p.finish();
    }
    if until_idle {
        TERMINAL.eprintln(&format!("{name} --until-idle: {totals}"));
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

/// What the runs of `run --until-idle` did together: how many, and the sums of the `events`
/// and `written` counts their outputs report (M10's output has both).
#[derive(Default)]
struct RunTotals {
    runs: u64,
    events: u64,
    written: u64,
}

impl RunTotals {
    fn add(&mut self, output: Option<&str>) {
        self.runs = self.runs.saturating_add(1);
        let v = output.and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok());
        let count = |field: &str| {
            v.as_ref()
                .and_then(|v| v.get(field))
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        };
        self.events = self.events.saturating_add(count("events"));
        self.written = self.written.saturating_add(count("written"));
    }
}

impl std::fmt::Display for RunTotals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} runs, {} events, {} written",
            self.runs, self.events, self.written
        )
    }
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
            writeln!(out, "{}", serde_json::to_string(&r.to_json()?)?)?;
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

fn cmd_history_show(
    history: &flowhost::history::History,
    id: i64,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let Some(r) = history.get(id)? else {
        bail!("no run {id} in history")
    };
    if json {
        return print_line(format_args!(
            "{}",
            serde_json::to_string_pretty(&r.to_json()?)?
        ));
    }
    // For people: one field a line; JSON pretty-printed; the flow's text escaped.
    let pretty = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| text.to_string())
    };
    let block = |text: &str| -> String {
        text.lines()
            .map(|l| format!("  {}", TERMINAL.clean(l)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut out = std::io::stdout().lock();
    let ms = flowhost::history::duration_ms(&r)
        .map(|m| format!(" ({m} ms)"))
        .unwrap_or_default();
    writeln!(out, "run {}: {} {}", r.id, r.flow, r.status)?;
    if let Some(parent) = r.parent {
        writeln!(out, "parent:   run {parent}")?;
    }
    writeln!(out, "trigger:  {}", r.trigger)?;
    writeln!(out, "started:  {}", r.started)?;
    writeln!(
        out,
        "ended:    {}{ms}",
        r.ended.as_deref().unwrap_or("(still running)")
    )?;
    writeln!(out, "input:\n{}", block(&pretty(&r.input)))?;
    if let Some(o) = &r.output {
        writeln!(out, "output:\n{}", block(&pretty(o)))?;
    }
    if let Some(e) = &r.error {
        writeln!(out, "error:\n{}", block(e))?;
    }
    if !r.logs.is_empty() {
        writeln!(out, "logs:")?;
        for l in &r.logs {
            let line = format!("{} {:<5} {}: {}", l.at, l.level, l.flow, l.message);
            writeln!(out, "  {}", TERMINAL.clean(&line))?;
        }
        if r.logs_dropped > 0 {
            writeln!(out, "  ({} more lines not kept)", r.logs_dropped)?;
        }
    }
    if !r.children.is_empty() {
        writeln!(out, "child calls:")?;
        for c in &r.children {
            writeln!(
                out,
                "  {:<8} {} calls, {} failed, {} ms",
                c.flow, c.calls, c.failures, c.total_ms
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// For `history NAME`: fails with "no flow named `NAME`" (and a suggestion) when `name` has
/// no run in history and is no flow of the flows folders.
fn known_in_history_or_folders(
    cfg: &Config,
    history: Option<&flowhost::history::History>,
    name: &str,
) -> Result<(), Usage> {
    if let Some(h) = history {
        if !h
            .list(Some(name), 1)
            .map_err(|e| Usage(e.into()))?
            .is_empty()
        {
            return Ok(());
        }
    }
    check_flow_name(cfg, name).map_err(|Usage(e)| {
        Usage(anyhow::anyhow!(
            "{e}; it has no run in history either (`flowhost history` lists every run)"
        ))
    })
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
        TableCmd::List { json: true } => {
            let mut tables = Vec::new();
            for name in store.schemas().names() {
                let (rows, in_database) = match store.row_count(name) {
                    Ok(n) => (n, true),
                    Err(flowhost::store::TableError::NotFound(_)) => (0, false),
                    Err(e) => return Err(e.into()),
                };
                tables.push(serde_json::json!({
                    "name": name, "rows": rows, "in_database": in_database,
                }));
            }
            writeln!(
                out,
                "{}",
                serde_json::to_string(&serde_json::json!({ "tables": tables }))?
            )?;
        }
        TableCmd::List { json: false } => {
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
            if limit == 0 {
                return Ok(ExitCode::SUCCESS);
            }
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
            let format = Format::pick(format, file.as_deref());
            flowhost::export::export(store, &name, format, file.as_deref())?;
            return Ok(ExitCode::SUCCESS);
        }
        TableCmd::Import { name, .. } => {
            bail!("table import of `{name}` needs a writable database")
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
