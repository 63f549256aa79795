//! flowhost as installed: the release binary copied alone into an empty folder, with no
//! checkout anywhere in its environment, runs the built-in ASA package against the simulator;
//! the config is found and the state goes where `host/src/paths.rs` says; a user's flows
//! folder replaces a built-in flow; the compile cache stays under its cap.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{text, wait_until, PATIENCE};

/// A machine without the checkout: the binary alone in an empty folder (the working
/// directory), and empty HOME, XDG_CONFIG_HOME and XDG_STATE_HOME.
struct Machine {
    _tmp: tempfile::TempDir,
    bin: PathBuf,
    home: PathBuf,
    config_home: PathBuf,
    state_home: PathBuf,
}

impl Machine {
    fn new() -> Machine {
        let tmp = tempfile::tempdir().unwrap();
        let dir = |name: &str| {
            let p = tmp.path().join(name);
            std::fs::create_dir_all(&p).unwrap();
            p
        };
        let (bin, home) = (dir("bin"), dir("home"));
        let (config_home, state_home) = (dir("xdg-config"), dir("xdg-state"));
        std::fs::copy(env!("CARGO_BIN_EXE_flowhost"), bin.join("flowhost")).unwrap();
        wait_until_executable(&bin.join("flowhost"));
        Machine {
            _tmp: tmp,
            bin,
            home,
            config_home,
            state_home,
        }
    }

    /// A folder of its own under the machine's temp folder.
    fn folder(&self, name: &str) -> PathBuf {
        let p = self.home.parent().unwrap().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// `flowhost ARGS` run in the binary's folder, with only this machine's environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.bin.join("flowhost"));
        c.current_dir(&self.bin)
            .env_clear()
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.config_home)
            .env("XDG_STATE_HOME", &self.state_home)
            .env("RUST_LIB_BACKTRACE", "0")
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command that must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "flowhost {args:?}: {}\n{}",
            out.status,
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

/// Every file under `dir`, relative to it, sorted.
/// Waits until the copied binary can be run. Another test thread that forked while the copy
/// was open for writing holds that descriptor until its child execs, and until then running
/// the copy fails with ETXTBSY ("Text file busy"); that child execs within moments.
fn wait_until_executable(bin: &Path) {
    for _ in 0..500 {
        match Command::new(bin).arg("--version").output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => panic!("cannot run {}: {e}", bin.display()),
            Ok(_) => return,
        }
    }
    panic!("{} stayed busy (ETXTBSY) for 5 s", bin.display());
}

fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn has_db(dir: &Path) -> bool {
    dir.join("flowhost.db").is_file()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_alone_drains_the_simulator_and_serves() {
    let m = Machine::new();
    let sim = asa_sim::Sim::start(asa_sim::SimConfig {
        events: 250,
        ..Default::default()
    })
    .await
    .unwrap();
    // The operator's config: only the grant of the simulator's origin (no flows, no tables).
    let etc = m.folder("etc");
    let config = etc.join("flowhost.yaml");
    let origin = sim.base_url().trim_end_matches('/').to_string();
    std::fs::write(
        &config,
        format!("grants:\n  U00: {{hosts: [\"{origin}\"]}}\n  M10: {{hosts: [\"{origin}\"]}}\n"),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let with_keys = |args: &[&str]| {
        let mut c = m.command(&[&["--config", config], args].concat());
        c.env("FLOWHOST_SECRET_ASA_KEY_ID", sim.key_id())
            .env("FLOWHOST_SECRET_ASA_KEY_SECRET", sim.key_secret());
        c
    };
    let must = |mut c: Command| {
        let out = c.output().unwrap();
        assert!(out.status.success(), "{c:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let settings = format!(
        "{{\"asaTeam\": \"{}\", \"asaBaseUrl\": \"{origin}\", \"searchCount\": \"100\"}}",
        sim.team()
    );
    must(with_keys(&["run", "U02", "--input", &settings]));
    // `check` sees the built-in package whole (flows, tables, the granted base URL, the keys).
    must(with_keys(&["check"]));
    must(with_keys(&["run", "U03"]));
    must(with_keys(&["run", "M10", "--until-idle"]));

    let export = must(with_keys(&["table", "export", "Audit Events"]));
    let mut stored: Vec<String> = export
        .lines()
        .map(|l| {
            let row: serde_json::Value = serde_json::from_str(l).unwrap();
            row["id"].as_str().unwrap().to_string()
        })
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        common::asa::sim_ids(&sim),
        "exactly the simulator's events"
    );

    // A fresh install has M10 off for `serve` until the operator turns it on.
    let listed = must(with_keys(&["list"]));
    let m10 = listed.lines().find(|l| l.starts_with("M10 ")).unwrap();
    assert!(m10.ends_with("disabled"), "{listed}");
    must(with_keys(&["flow", "enable", "M10"]));

    // `serve` runs M10 on its schedule (at start), and stops cleanly on SIGTERM.
    let mut serve: Child = with_keys(&["serve"]).stderr(Stdio::null()).spawn().unwrap();
    let history = flowhost::history::History::open_read_only(&flowhost::history::history_path_for(
        &etc.join("flowhost.db"),
    ))
    .unwrap();
    wait_until(PATIENCE, "a scheduled M10 run that succeeded", || {
        history.list(Some("M10"), 50).unwrap().iter().any(|r| {
            r.trigger == flowhost::history::Trigger::Schedule
                && r.status == flowhost::history::RunStatus::Ok
        })
    })
    .await;
    let pid = i32::try_from(serve.id()).unwrap();
    // SAFETY: a signal to our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = serve.wait().unwrap();
    assert!(status.success(), "serve after SIGTERM: {status}");

    // Every file it wrote is in the config's folder; the binary's folder and the user's
    // folders are as they were.
    assert_eq!(files(&m.bin), ["flowhost"]);
    for d in [&m.home, &m.config_home, &m.state_home] {
        assert_eq!(files(d), Vec::<String>::new(), "{}", d.display());
    }
    assert!(
        has_db(&etc) && etc.join("cache").is_dir(),
        "{:?}",
        files(&etc)
    );
}

#[test]
fn without_a_config_state_goes_to_xdg_state_home_else_to_home() {
    let m = Machine::new();
    m.ok(&["run", "U03"]);
    assert!(
        has_db(&m.state_home.join("flowhost")),
        "{:?}",
        files(&m.state_home)
    );
    assert!(m.state_home.join("flowhost/cache").is_dir());
    assert_eq!(files(&m.bin), ["flowhost"]);

    // XDG_STATE_HOME unset: ~/.local/state/flowhost.
    let out = m
        .command(&["run", "U03"])
        .env_remove("XDG_STATE_HOME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(has_db(&m.home.join(".local/state/flowhost")));

    // Neither: the one-line error says what to set, and nothing is written.
    let out = m
        .command(&["run", "U03"])
        .env_remove("XDG_STATE_HOME")
        .env_remove("HOME")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        common::error_line(&text(&out.stderr)),
        "error: cannot choose a state folder: no config file, and neither XDG_STATE_HOME nor \
         HOME is set to an absolute path (give --state-dir DIR or FLOWHOST_STATE_DIR)"
    );
}

/// A config that sets something harmless (an empty file is not a config).
const CONFIG: &str = "history: {retention: 30d}\n";

#[test]
fn the_config_is_found_here_then_in_xdg_config_home_and_state_follows_it() {
    let m = Machine::new();
    // $XDG_CONFIG_HOME/flowhost/flowhost.yaml: state beside it.
    let user = m.config_home.join("flowhost");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(user.join("flowhost.yaml"), CONFIG).unwrap();
    m.ok(&["run", "U03"]);
    assert!(has_db(&user), "{:?}", files(&user));
    assert!(!m.state_home.join("flowhost").exists());

    // ./flowhost.yaml comes first: state in the working directory.
    std::fs::write(m.bin.join("flowhost.yaml"), CONFIG).unwrap();
    std::fs::remove_file(user.join("flowhost.db")).unwrap();
    m.ok(&["run", "U03"]);
    assert!(has_db(&m.bin));
    assert!(!has_db(&user));

    // --state-dir (or FLOWHOST_STATE_DIR) wins over the config's folder.
    let flag = m.folder("flag-state");
    m.ok(&["--state-dir", flag.to_str().unwrap(), "run", "U03"]);
    assert!(has_db(&flag));
    let var = m.folder("env-state");
    let out = m
        .command(&["run", "U03"])
        .env("FLOWHOST_STATE_DIR", &var)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(has_db(&var));

    // --config names a file elsewhere: state beside it; an explicit `db:` still wins.
    let other = m.folder("other");
    std::fs::write(other.join("flowhost.yaml"), "db: data/mine.db\n").unwrap();
    let file = other.join("flowhost.yaml");
    m.ok(&["--config", file.to_str().unwrap(), "run", "U03"]);
    assert!(other.join("data/mine.db").is_file(), "{:?}", files(&other));
    assert!(other.join("cache").is_dir());

    // The config's `state_dir:` (as in /etc/flowhost for a service) puts state there, so a
    // shell and the service share one database; --state-dir still wins over it.
    let etc = m.folder("etc-flowhost");
    let service_state = m.folder("var-lib-flowhost");
    std::fs::write(
        etc.join("flowhost.yaml"),
        format!("state_dir: {}\n", service_state.display()),
    )
    .unwrap();
    let file = etc.join("flowhost.yaml");
    m.ok(&["--config", file.to_str().unwrap(), "run", "U03"]);
    assert!(has_db(&service_state), "{:?}", files(&service_state));
    assert!(!has_db(&etc), "{:?}", files(&etc));
    let flag = m.folder("flag-over-config");
    m.ok(&[
        "--config",
        file.to_str().unwrap(),
        "--state-dir",
        flag.to_str().unwrap(),
        "run",
        "U03",
    ]);
    assert!(has_db(&flag));
}

#[test]
fn a_flows_folder_replaces_a_built_in_flow_of_the_same_name() {
    let m = Machine::new();
    let before = m.ok(&["list"]);
    assert!(
        before.contains("U01 ") && before.contains("from: built-in"),
        "{before}"
    );

    // echo, dropped in as U01: it returns its input, which the built-in U01 does not.
    let mine = m.folder("my-flows");
    common::drop_flow(&mine, "U01", "echo", "title: My U01\n");
    let flows = mine.to_str().unwrap();
    let list = m.ok(&["--flows", flows, "list"]);
    let u01: Vec<&str> = list
        .lines()
        .skip_while(|l| !l.starts_with("U01 "))
        .take(3)
        .collect();
    assert!(u01[0].contains("My U01"), "{list}");
    assert_eq!(u01[2].trim(), format!("from: {flows}"), "{list}");
    let out = m.ok(&[
        "--flows",
        flows,
        "run",
        "U01",
        "--input",
        "{\"mine\": true}",
    ]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        serde_json::json!({"mine": true})
    );
    // The other built-in flows are still there.
    assert!(
        list.contains("M10 ") && list.contains("from: built-in"),
        "{list}"
    );

    // `builtin: false`: only the folders' flows (and tables).
    let config = m.folder("only-mine").join("flowhost.yaml");
    std::fs::write(&config, format!("builtin: false\nflows: [\"{flows}\"]\n")).unwrap();
    let config = config.to_str().unwrap();
    let list = m.ok(&["--config", config, "list"]);
    let names: Vec<&str> = list
        .lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["U01"], "{list}");
    m.ok(&["--config", config, "run", "U01"]);
    assert_eq!(
        m.ok(&["--config", config, "table", "list"]),
        "",
        "no tables"
    );
}

#[test]
fn the_compile_cache_stays_under_its_cap() {
    let m = Machine::new();
    let state = m.folder("state");
    let cache = state.join("cache");
    // 1 MiB holds one or two compiled ASA flows; these runs compile many more.
    std::fs::write(state.join("flowhost.yaml"), "cache_max_size: 1MiB\n").unwrap();
    let config = state.join("flowhost.yaml");
    let config = config.to_str().unwrap();
    let size = || -> u64 {
        std::fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .map(|e| e.metadata().unwrap().len())
            .sum()
    };
    let mut seen = std::collections::BTreeSet::new();
    let runs: [&[&str]; 6] = [
        &["U02", "--input", "{\"asaTeam\": \"t\"}"],
        &["U03"],
        &["U04"],
        &["U01"],
        &["U10"],
        &["U03"],
    ];
    for run in runs {
        let flow = run[0];
        m.ok(&[&["--config", config, "run"], run].concat());
        assert!(size() <= 1 << 20, "after {flow}: {} bytes cached", size());
        for e in std::fs::read_dir(&cache).unwrap().flatten() {
            seen.insert(e.file_name());
        }
    }
    let kept = std::fs::read_dir(&cache).unwrap().count();
    assert!(kept >= 1, "the cache keeps what fits");
    assert!(
        seen.len() > kept,
        "more components were compiled ({}) than are kept ({kept})",
        seen.len()
    );
}
