//! `cargo xtask`: the project's build steps that plain cargo cannot express.
//!
//! - `cargo xtask flows` — adds the wasm32-wasip2 target if missing, builds every flow crate
//!   in `flows/` and lays out `flows/dist/` (the ASA package) and `flows/dist-test/` (test
//!   flows) as `NAME.wasm` + `NAME.yaml`, the way users drop flows into a folder.
//! - `cargo xtask test` — makes sure moto's `moto_server` (the S3 server the blob tests run
//!   against) is on PATH, installing it with pip when it is not, and `systemd-analyze` (the
//!   deploy test verifies the systemd unit), installing Debian's `systemd` with apt-get when
//!   it is not; and what the console's browser tests need (`ensure_browser`: Node.js 20+,
//!   Debian's Chromium, installed with apt-get when it is missing, and `npm ci` in
//!   `tests/browser`; the JavaScript flow tests need the same Node.js and npm), componentize-py
//!   at its pinned release (the Python flow tests; installed with pip like moto), and Debian's PostgreSQL server binaries (`ensure_postgres`, installed
//!   with apt-get when missing; the tests start their own throwaway servers); builds the
//!   flows, then runs
//!   every test: the flows' native unit tests and the host workspace's tests (one `release`
//!   profile throughout).
//! - `cargo xtask install [--root DIR]` — adds the wasm32-wasip2 target if missing and installs
//!   `flowhost` (with the ASA package built in) with `cargo install --path host --profile
//!   dist` into `~/.cargo/bin` (or `DIR/bin`).
//! - `cargo xtask demo` — builds the binaries (the ASA flows are built into `flowhost`), starts the ASA simulator on loopback,
//!   serving two ASA teams (the default one and `acme`, with its own key pair and events), points
//!   the Environment Variables at it (one row per team), drains both backlogs with
//!   `flowhost run M10 --until-idle`, and shows what landed, per team.
//!
//! It uses only the standard library and runs the real `cargo`, `rustup`, `flowhost` and
//! `asa-sim` commands, printing each one.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use flows_build::{cargo, copy_if_changed, show};
use std::process::{Child, Command, ExitCode, Stdio};

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = match project_root() {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let result = match args.first().map(String::as_str) {
        Some("flows") => build_flows(&root),
        Some("test") => test(&root, &args[1..]),
        Some("demo") => demo(&root, &args[1..]),
        Some("install") => install(&root, &args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <flows | test [-- cargo test args] | demo [--events N] | \
                 install [--root DIR]>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &str) -> ExitCode {
    eprintln!("xtask: error: {e}");
    ExitCode::FAILURE
}

fn project_root() -> Result<PathBuf> {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "cannot find the project root".into())
}

/// Runs `cmd`, echoing it, and fails with its exit status.
fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {}", show(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start `{}`: {e}", show(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", show(cmd)))
    }
}

fn ensure_wasm_target() -> Result<()> {
    match flows_build::wasm_target_installed() {
        Some(false) => run(Command::new("rustup").args(["target", "add", flows_build::TARGET])),
        // Installed, or no rustup: the toolchain was set up by other means; cargo will say.
        _ => Ok(()),
    }
}

/// Builds every flow (the same build the host's build script runs, see `flows-build`) and
/// lays out `flows/dist` and `flows/dist-test`.
fn build_flows(root: &Path) -> Result<()> {
    ensure_wasm_target()?;
    let flows = root.join("flows");
    let built = flows_build::build(&flows)?;
    for (group, dist) in [("asa", "dist"), ("test", "dist-test")] {
        let dist = flows.join(dist);
        std::fs::create_dir_all(&dist).map_err(|e| format!("{}: {e}", dist.display()))?;
        for f in built.iter().filter(|f| f.group == group) {
            copy_if_changed(&f.wasm, &dist.join(format!("{}.wasm", f.name)))?;
            copy_if_changed(&f.manifest, &dist.join(format!("{}.yaml", f.name)))?;
        }
    }
    eprintln!(
        "xtask: {} flows in flows/dist and flows/dist-test",
        built.len()
    );
    Ok(())
}

fn host_triple() -> Result<String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .ok_or_else(|| "rustc -vV printed no host triple".into())
}

/// The moto release the S3 tests are written against.
const MOTO: &str = "moto[server]>=5,<6";

/// Whether an executable `program` is in one of the folders of `path` (a PATH value).
fn on_path(path: &OsStr, program: &str) -> bool {
    std::env::split_paths(path).any(|dir| {
        let p = dir.join(program);
        std::fs::metadata(&p).is_ok_and(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.is_file() && m.permissions().mode() & 0o111 != 0
        })
    })
}

/// Makes sure `moto_server` is on `path` (the PATH the tests will run with): when it is not,
/// installs moto with `python3 -m pip` (see [`pip_install`]). Fails at once, naming what to
/// install, without python3 or pip.
fn ensure_moto(path: &OsStr) -> Result<()> {
    if on_path(path, "moto_server") {
        return Ok(());
    }
    eprintln!(
        "xtask: `moto_server` (the S3 server of the blob tests) is not on PATH: installing {MOTO}"
    );
    pip_install(path, MOTO, "the S3 tests need moto's `moto_server`")?;
    if on_path(path, "moto_server") {
        Ok(())
    } else {
        Err(
            "pip installed moto, but `moto_server` is still not on PATH: add the folder pip \
             installs scripts into (see `python3 -m pip show -f moto`) to PATH"
                .into(),
        )
    }
}

/// The componentize-py release the Python flow tests build with (`flowhost build` names the
/// same pin).
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

/// What `componentize-py --version` prints for [`COMPONENTIZE_PY`].
fn componentize_py_version() -> String {
    COMPONENTIZE_PY.replace("==", " ")
}

/// Makes sure `componentize-py --version` on `path` is the pinned release (the Python flow
/// tests build components with it): otherwise installs it with `python3 -m pip`. Fails at
/// once, naming what to install, without python3 or pip.
fn ensure_componentize_py(path: &OsStr) -> Result<()> {
    let installed = || {
        Command::new("componentize-py")
            .env("PATH", path)
            .arg("--version")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let want = componentize_py_version();
    let found = installed();
    if found.as_deref() == Some(want.as_str()) {
        return Ok(());
    }
    eprintln!(
        "xtask: the Python flow tests need `{want}` and `componentize-py --version` says {}: \
         installing {COMPONENTIZE_PY}",
        found.map_or_else(|| "nothing (not on PATH)".to_string(), |v| format!("`{v}`"))
    );
    pip_install(
        path,
        COMPONENTIZE_PY,
        "the Python flow tests need componentize-py",
    )?;
    match installed() {
        Some(v) if v == want => Ok(()),
        other => Err(format!(
            "pip installed {COMPONENTIZE_PY}, but `componentize-py --version` on PATH says {}: \
             put the folder pip installs scripts into (see `python3 -m pip show -f \
             componentize-py`) first on PATH",
            other.map_or_else(|| "nothing".to_string(), |v| format!("`{v}`"))
        )),
    }
}

/// `python3 -m pip install SPEC` with `path` as PATH (then `pyenv rehash`, which makes
/// pyenv's shims for new commands). Fails at once, starting with `need` and naming what to
/// install, without python3 or pip.
fn pip_install(path: &OsStr, spec: &str, need: &str) -> Result<()> {
    if !on_path(path, "python3") {
        return Err(format!(
            "{need}, installed with pip, and `python3` is not on PATH: install Python 3 with \
             pip (e.g. `apt-get install python3 python3-pip`), or install it yourself: \
             python3 -m pip install '{spec}'"
        ));
    }
    let pip = Command::new("python3")
        .env("PATH", path)
        .args(["-m", "pip", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !pip.is_ok_and(|s| s.success()) {
        return Err(format!(
            "{need}, installed with pip, and `python3 -m pip` does not work: install pip \
             (e.g. `apt-get install python3-pip` or `python3 -m ensurepip`), or install it \
             yourself: python3 -m pip install '{spec}'"
        ));
    }
    run(Command::new("python3")
        .env("PATH", path)
        // Installing as root is what a CI machine does; pip's warning is noise there.
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            spec,
        ]))
    .map_err(|e| {
        format!(
            "{e}: {spec} could not be installed; if pip refuses an externally managed Python, \
             install '{spec}' in a virtualenv and put its bin folder on PATH"
        )
    })?;
    if on_path(path, "pyenv") {
        run(Command::new("pyenv").env("PATH", path).arg("rehash"))?;
    }
    Ok(())
}

/// Makes sure `systemd-analyze` (the deploy test verifies the systemd unit with it) is on
/// `path`: when it is not, installs Debian's `systemd` package with apt-get. Fails at once,
/// naming the package, without apt-get or when apt-get fails (not root).
fn ensure_systemd_analyze(path: &OsStr) -> Result<()> {
    if on_path(path, "systemd-analyze") {
        return Ok(());
    }
    let need = "the deploy test verifies the systemd unit with `systemd-analyze`, which is not \
                on PATH: install Debian's `systemd` package (apt-get install systemd)";
    if !on_path(path, "apt-get") {
        return Err(format!("{need}; there is no apt-get here to do it"));
    }
    eprintln!("xtask: `systemd-analyze` is not on PATH: installing Debian's systemd package");
    let quiet = |args: &[&str]| apt_get(path, args).map_err(|e| format!("{need}; {e}"));
    quiet(&["update", "-q"])?;
    let done = quiet(&["install", "-y", "-q", "--no-install-recommends", "systemd"])?;
    if !done.success() || !on_path(path, "systemd-analyze") {
        return Err(format!(
            "{need}; `apt-get install systemd` failed ({done}): as root?"
        ));
    }
    Ok(())
}

/// Where Debian's `postgresql` package puts each version's server binaries (off PATH).
const POSTGRES_LIB: &str = "/usr/lib/postgresql";

/// Tells Debian's `postgresql-common` not to create (and so not to start) a cluster of its own
/// when the package is installed: the tests start throwaway clusters themselves.
const NO_MAIN_CLUSTER: &str =
    "/etc/postgresql-common/createcluster.d/flowhost-no-main-cluster.conf";

/// Whether some `lib/*/bin` holds `initdb` and `postgres`.
fn postgres_installed(lib: &Path) -> bool {
    std::fs::read_dir(lib)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let bin = e.path().join("bin");
            bin.join("initdb").is_file() && bin.join("postgres").is_file()
        })
}

/// Makes sure the PostgreSQL tests (host/tests/backends.rs, postgres.rs, cluster.rs) can
/// start their throwaway servers: `initdb` and `postgres` under `lib/*/bin` (Debian's
/// layout), else, as root with apt-get, installs Debian's `postgresql` (no cluster created,
/// no service started); otherwise fails at once naming `apt-get install postgresql`.
fn ensure_postgres(path: &OsStr, lib: &Path, root_user: bool) -> Result<()> {
    if postgres_installed(lib) {
        return Ok(());
    }
    let need = format!(
        "the PostgreSQL tests start throwaway servers with `initdb` and `postgres` from {}/*/bin, \
         which has none: install Debian's `postgresql` package (apt-get install postgresql)",
        lib.display()
    );
    if !root_user {
        return Err(format!("{need}; not root here, so not installing it"));
    }
    if !on_path(path, "apt-get") {
        return Err(format!("{need}; there is no apt-get here to do it"));
    }
    eprintln!("xtask: no PostgreSQL server binaries: installing Debian's postgresql package");
    let conf = Path::new(NO_MAIN_CLUSTER);
    if let Some(dir) = conf.parent() {
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(conf, "create_main_cluster = false\n"))
            .map_err(|e| format!("{need}; cannot write {}: {e}", conf.display()))?;
    }
    let install = [
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "postgresql",
    ];
    if !apt_get(path, &install)?.success() {
        // A fresh machine's package lists may be missing or old.
        apt_get(path, &["update", "-q"])?;
        let done = apt_get(path, &install)?;
        if !done.success() {
            return Err(format!(
                "{need}; `apt-get install postgresql` failed ({done})"
            ));
        }
    }
    if postgres_installed(lib) {
        Ok(())
    } else {
        Err(format!(
            "{need}; apt-get installed postgresql, and the binaries are still not there"
        ))
    }
}

/// The browser the console's tests drive (Debian's `chromium` package puts it here; the test
/// script launches this path).
const CHROMIUM: &str = "/usr/bin/chromium";

/// The oldest Node.js the browser tests run on (playwright-core's own minimum).
const NODE_MAJOR: u32 = 20;

/// What [`ensure_browser`] looks at: the PATH the tests run with, where Chromium must be,
/// whether this process may install packages (root), and the browser tests' npm folder.
struct BrowserSetup<'a> {
    path: &'a OsStr,
    chromium: &'a Path,
    root_user: bool,
    npm_dir: &'a Path,
}

/// Makes sure the console's browser tests (host/tests/console_browser.rs) can run: Node.js
/// 20+ and npm on PATH (else fails at once naming them), Chromium at [`CHROMIUM`] (else, as
/// root with apt-get, installs Debian's `chromium`, running `apt-get update` when a first
/// install fails; otherwise fails naming `apt-get install chromium`), and `npm ci` in
/// `tests/browser` when its node_modules is missing or older than the lock file.
fn ensure_browser(s: &BrowserSetup) -> Result<()> {
    let need_node = format!(
        "the console's browser tests run on Node.js {NODE_MAJOR} or newer with npm \
         (e.g. `apt-get install nodejs npm`)"
    );
    if !on_path(s.path, "node") {
        return Err(format!("{need_node}, and `node` is not on PATH"));
    }
    let version = Command::new("node")
        .env("PATH", s.path)
        .arg("--version")
        .output()
        .map_err(|e| format!("{need_node}; `node --version` did not run: {e}"))?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let major = version
        .strip_prefix('v')
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    if major.is_none_or(|m| m < NODE_MAJOR) {
        return Err(format!(
            "{need_node}, and `node --version` says `{version}`"
        ));
    }
    if !on_path(s.path, "npm") {
        return Err(format!("{need_node}, and `npm` is not on PATH"));
    }
    ensure_chromium(s)?;
    npm_ci_if_stale(s)
}

/// [`CHROMIUM`] present, or installed with apt-get (see [`ensure_browser`]).
fn ensure_chromium(s: &BrowserSetup) -> Result<()> {
    if s.chromium.exists() {
        return Ok(());
    }
    let need = format!(
        "the console's browser tests drive Chromium at {}, which is missing: install Debian's \
         `chromium` package (apt-get install chromium)",
        s.chromium.display()
    );
    if !s.root_user {
        return Err(format!("{need}; not root here, so not installing it"));
    }
    if !on_path(s.path, "apt-get") {
        return Err(format!("{need}; there is no apt-get here to do it"));
    }
    eprintln!(
        "xtask: {} is missing: installing Debian's chromium package",
        s.chromium.display()
    );
    let install = ["install", "-y", "-q", "--no-install-recommends", "chromium"];
    if !apt_get(s.path, &install)?.success() {
        // A fresh machine's package lists may be missing or old.
        apt_get(s.path, &["update", "-q"])?;
        let done = apt_get(s.path, &install)?;
        if !done.success() {
            return Err(format!(
                "{need}; `apt-get install chromium` failed ({done})"
            ));
        }
    }
    if s.chromium.exists() {
        Ok(())
    } else {
        Err(format!(
            "{need}; apt-get installed chromium, and it is still not there"
        ))
    }
}

/// `apt-get ARGS`, non-interactive, echoed; its exit status.
fn apt_get(path: &OsStr, args: &[&str]) -> Result<std::process::ExitStatus> {
    let mut cmd = Command::new("apt-get");
    cmd.env("PATH", path)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(args);
    eprintln!("xtask: $ {}", show(&cmd));
    cmd.status()
        .map_err(|e| format!("`{}` did not start: {e}", show(&cmd)))
}

/// `npm ci` in the browser tests' folder when `node_modules` is missing or older than
/// `package-lock.json` (npm writes `node_modules/.package-lock.json` at each install).
fn npm_ci_if_stale(s: &BrowserSetup) -> Result<()> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let lock = s.npm_dir.join("package-lock.json");
    let Some(locked) = modified(&lock) else {
        return Err(format!("{} is missing", lock.display()));
    };
    let installed = modified(&s.npm_dir.join("node_modules/.package-lock.json"));
    if installed.is_some_and(|i| i >= locked) {
        return Ok(());
    }
    run(Command::new("npm")
        .env("PATH", s.path)
        .current_dir(s.npm_dir)
        .args(["ci", "--no-audit", "--no-fund"]))
}

/// Whether this process runs as root (the owner of `/proc/self` is its effective user).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Every test: the flows' pure-Rust logic natively, then the host workspace.
fn test(root: &Path, extra: &[String]) -> Result<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    ensure_moto(&path)?;
    ensure_componentize_py(&path)?;
    ensure_systemd_analyze(&path)?;
    ensure_postgres(&path, Path::new(POSTGRES_LIB), running_as_root())?;
    ensure_browser(&BrowserSetup {
        path: &path,
        chromium: Path::new(CHROMIUM),
        root_user: running_as_root(),
        npm_dir: &root.join("tests/browser"),
    })?;
    build_flows(root)?;
    let triple = host_triple()?;
    run(cargo().current_dir(root.join("flows")).args([
        "test",
        "--release",
        "-p",
        "asa-lib",
        "--target",
        &triple,
    ]))?;
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args(["test", "--release", "--workspace"]);
    cmd.args(extra.iter().skip_while(|a| *a == "--"));
    run(&mut cmd)
}

/// `cargo install` of the `flowhost` binary with the `dist` profile (fat LTO, one codegen
/// unit), into `--root DIR` when given (cargo's default otherwise: `~/.cargo/bin`). The
/// workspace's `target/` is reused and its lock file is kept (`--locked`).
fn install_command(root: &Path, args: &[String]) -> Result<Command> {
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args(["install", "--locked", "--profile", "dist", "--path"]);
    cmd.arg(root.join("host"))
        .arg("--target-dir")
        .arg(root.join("target"));
    match args {
        [] => {}
        [flag, dir] if flag == "--root" => {
            cmd.arg("--root").arg(dir);
        }
        _ => return Err("usage: cargo xtask install [--root DIR]".into()),
    }
    Ok(cmd)
}

fn install(root: &Path, args: &[String]) -> Result<()> {
    let mut cmd = install_command(root, args)?;
    ensure_wasm_target()?;
    run(&mut cmd)
}

/// Kills the child when dropped, so the simulator never outlives the demo.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The demo's second ASA team and its key pair (made up; the simulator accepts them).
const DEMO_TEAM: &str = "acme";
const DEMO_TEAM_KEY_ID: &str = "0c0ffee0-acme-4d3e-9a1b-5e7d2c4b6a80";
const DEMO_TEAM_KEY_SECRET: &str = "YWNtZS1kZW1vLWtleS1zZWNyZXQtbm90LWEtcmVhbC1vbmU=";

fn demo(root: &Path, args: &[String]) -> Result<()> {
    let events = match args {
        [flag, n] if flag == "--events" => n
            .parse::<u64>()
            .map_err(|_| format!("--events: `{n}` is not a number"))?,
        [] => 5000,
        _ => return Err("usage: cargo xtask demo [--events N]".into()),
    };
    // The flows are built into the binary by its build script (see `flows-build`).
    ensure_wasm_target()?;
    run(cargo()
        .current_dir(root)
        .args(["build", "--release", "-p", "flowhost", "-p", "asa-sim"]))?;
    let bin = root.join("target/release");

    // 1. The ASA simulator on a free loopback port.
    let mut sim = Command::new(bin.join("asa-sim"));
    sim.args([
        "--listen",
        "127.0.0.1:0",
        "--events",
        &events.to_string(),
        "--print-secret",
        "--extra-team",
        &format!("{DEMO_TEAM}:{DEMO_TEAM_KEY_ID}:{DEMO_TEAM_KEY_SECRET}"),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    eprintln!("xtask: $ {}", show(&sim));
    let mut child = KillOnDrop(
        sim.spawn()
            .map_err(|e| format!("cannot start asa-sim: {e}"))?,
    );
    let stdout = child.0.stdout.take().ok_or("asa-sim has no stdout")?;
    let mut line = String::new();
    let mut banner = BufReader::new(stdout);
    banner
        .read_line(&mut line)
        .map_err(|e| format!("reading asa-sim's banner: {e}"))?;
    // Keep reading what else it prints, so that it never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut banner, &mut std::io::sink()));
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")).map(str::to_string))
            .ok_or_else(|| format!("asa-sim's banner has no `{k}=`: {line}"))
    };
    let (base, team, key_id, secret) = (
        field("base_url")?,
        field("team")?,
        field("key_id")?,
        field("key_secret")?,
    );

    // 2. A fresh demo database, with the operator's grant for the simulator's origin.
    let dir = root.join(".flowhost/demo");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let config = dir.join("flowhost.yaml");
    let origin = base.trim_end_matches('/');
    std::fs::write(
        &config,
        format!(
            "# Written by `cargo xtask demo`: the built-in ASA flows may also talk to the local\n\
             # simulator. The database lands beside this file (the config's folder is the state\n\
             # folder); the compile cache outlives the demo.\n\
             # U00 may also read the second team's key pair (its row names these secrets).\n\
             cache_dir: ../cache\n\
             grants:\n  U00: {{ hosts: [\"{origin}\"], secrets: [ACME_KEY_ID, ACME_KEY_SECRET] }}\n  \
             M10: {{ hosts: [\"{origin}\"] }}\n"
        ),
    )
    .map_err(|e| format!("{}: {e}", config.display()))?;
    let flowhost = |args: &[&str]| {
        let mut c = Command::new(bin.join("flowhost"));
        // Anywhere but the checkout: nothing depends on the working directory.
        c.current_dir(&dir)
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("FLOWHOST_SECRET_ASA_KEY_ID", &key_id)
            .env("FLOWHOST_SECRET_ASA_KEY_SECRET", &secret)
            .env("FLOWHOST_SECRET_ACME_KEY_ID", DEMO_TEAM_KEY_ID)
            .env("FLOWHOST_SECRET_ACME_KEY_SECRET", DEMO_TEAM_KEY_SECRET);
        c
    };

    // 3. Configure, reset, enable M10, and drain the backlog.
    let env =
        format!("{{\"asaTeam\":\"{team}\",\"asaBaseUrl\":\"{origin}\",\"searchCount\":\"1000\"}}");
    run(&mut flowhost(&["run", "U02", "--input", &env]))?;
    // The second team: its own row, naming the secrets with its key pair.
    let second = format!(
        "{{\"team\":\"{DEMO_TEAM}\",\"asaBaseUrl\":\"{origin}\",\"searchCount\":\"1000\",\
         \"keyIdSecret\":\"ACME_KEY_ID\",\"keySecretSecret\":\"ACME_KEY_SECRET\"}}"
    );
    run(&mut flowhost(&["run", "U02", "--input", &second]))?;
    run(&mut flowhost(&["run", "U05"]))?;
    run(&mut flowhost(&["run", "U03"]))?;
    // A fresh install has M10 off until the operator switches it on.
    run(&mut flowhost(&["flow", "enable", "M10"]))?;
    let started = std::time::Instant::now();
    run(&mut flowhost(&["run", "M10", "--until-idle"]))?;
    let took = started.elapsed();

    // 4. What a user wants to see.
    println!("\n== Tables");
    run(&mut flowhost(&["table", "list"]))?;
    println!("\n== Three enriched events");
    run(&mut flowhost(&[
        "table",
        "show",
        "Audit Events",
        "--limit",
        "3",
    ]))?;
    println!("\n== Execution Log (last runs)");
    run(&mut flowhost(&[
        "table",
        "show",
        "Execution Log",
        "--limit",
        "5",
    ]))?;
    println!("\n== Checkpoints (one per team)");
    run(&mut flowhost(&["table", "show", "Audit Checkpoints"]))?;
    println!("\n== Status (each team's events and checkpoint)");
    run(&mut flowhost(&["status"]))?;
    println!("\n== Run history");
    run(&mut flowhost(&["history", "--limit", "5"]))?;
    println!(
        "\nDrained {events} simulated events of each of two teams in {:.1}s. The demo database is {}; try\n  \
         target/release/flowhost --config {} table export \"Audit Events\" --format csv",
        took.as_secs_f64(),
        dir.join("flowhost.db").display(),
        config.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    /// A folder holding executable scripts `name` → body, for use as PATH.
    fn bin_dir(scripts: &[(&str, &str)]) -> (tempfile_free::Dir, OsString) {
        let dir = tempfile_free::Dir::new();
        for (name, body) in scripts {
            let p = dir.0.join(name);
            // The scripts' own PATH: the one under test holds only this folder.
            std::fs::write(&p, format!("#!/bin/sh\nPATH=/usr/bin:/bin\n{body}\n")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = dir.0.clone().into_os_string();
        (dir, path)
    }

    /// A temp folder without a crate: xtask uses only the standard library.
    ///
    /// A `Dir` also holds a process-wide lock for as long as it lives, so the tests that write
    /// scripts and run them take turns. Without it, a test that forks a child while another
    /// test still has a new script open for writing hands that open descriptor to its child,
    /// and the other test's `exec` of the script fails with ETXTBSY ("Text file busy"), as it
    /// did once in CI.
    mod tempfile_free {
        use std::sync::{Mutex, MutexGuard};
        static SERIAL: Mutex<()> = Mutex::new(());
        pub struct Dir(
            pub std::path::PathBuf,
            #[expect(dead_code, reason = "held for its lifetime, never read")]
            MutexGuard<'static, ()>,
        );
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                // A test that failed while holding the lock leaves it poisoned; the folder is
                // still ours to use.
                let turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
                let p = std::env::temp_dir().join(format!(
                    "xtask-test-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p, turn)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn install_uses_the_dist_profile_and_the_given_root() {
        let args = |a: &[&str]| {
            let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
            install_command(Path::new("/src"), &a)
                .map(|c| show(&c).split_once(' ').unwrap().1.to_string())
        };
        assert_eq!(
            args(&[]).unwrap(),
            "install --locked --profile dist --path /src/host --target-dir /src/target"
        );
        assert_eq!(
            args(&["--root", "/opt/fh"]).unwrap(),
            "install --locked --profile dist --path /src/host --target-dir /src/target --root /opt/fh"
        );
        assert!(args(&["--prefix"]).unwrap_err().contains("usage"));
    }

    #[test]
    fn moto_on_path_needs_nothing() {
        let (_d, path) = bin_dir(&[("moto_server", "exit 0")]);
        assert_eq!(ensure_moto(&path), Ok(()));
    }

    #[test]
    fn without_python_it_fails_at_once_naming_python() {
        let (_d, path) = bin_dir(&[]);
        let e = ensure_moto(&path).unwrap_err();
        assert!(
            e.contains("`python3` is not on PATH: install Python 3 with pip"),
            "{e}"
        );
    }

    #[test]
    fn without_pip_it_fails_at_once_naming_pip() {
        let (d, path) = bin_dir(&[("python3", "echo \"$@\" >> \"${0%/*}/python.log\"; exit 1")]);
        let e = ensure_moto(&path).unwrap_err();
        assert!(
            e.contains("`python3 -m pip` does not work: install pip"),
            "{e}"
        );
        let asked = std::fs::read_to_string(d.0.join("python.log")).unwrap();
        assert_eq!(asked, "-m pip --version\n", "no install was tried");
    }

    #[test]
    fn it_installs_moto_with_pip_then_rehashes() {
        // pip "installs" moto_server; pyenv records the rehash.
        let (d, path) = bin_dir(&[
            (
                "python3",
                "dir=\"${0%/*}\"; echo \"$@\" >> \"$dir/pip.log\"; \
                 if [ \"$3\" = install ]; then printf '#!/bin/sh\\n' > \"$dir/moto_server\"; \
                 chmod +x \"$dir/moto_server\"; fi; exit 0",
            ),
            ("pyenv", "echo \"$@\" >> \"${0%/*}/pyenv.log\""),
        ]);
        assert_eq!(ensure_moto(&path), Ok(()));
        let pip = std::fs::read_to_string(d.0.join("pip.log")).unwrap();
        assert_eq!(
            pip,
            format!(
                "-m pip --version\n-m pip install --quiet --disable-pip-version-check {MOTO}\n"
            )
        );
        assert_eq!(
            std::fs::read_to_string(d.0.join("pyenv.log")).unwrap(),
            "rehash\n"
        );
    }

    #[test]
    fn the_pinned_componentize_py_needs_nothing() {
        let (d, path) = bin_dir(&[
            ("componentize-py", "echo 'componentize-py 0.25.1'"),
            ("python3", "echo \"$@\" >> \"${0%/*}/pip.log\"; exit 0"),
        ]);
        assert_eq!(ensure_componentize_py(&path), Ok(()));
        assert!(!d.0.join("pip.log").exists(), "pip was asked");
    }

    #[test]
    fn another_componentize_py_is_replaced_by_the_pinned_one() {
        // pip "installs" 0.25.1 over 0.19.0.
        let (d, path) = bin_dir(&[
            (
                "python3",
                "dir=\"${0%/*}\"; echo \"$@\" >> \"$dir/pip.log\"; \
                 if [ \"$3\" = install ]; then \
                 printf '#!/bin/sh\\necho componentize-py 0.25.1\\n' > \"$dir/componentize-py\"; fi; \
                 exit 0",
            ),
            ("componentize-py", "echo 'componentize-py 0.19.0'"),
        ]);
        assert_eq!(ensure_componentize_py(&path), Ok(()));
        let pip = std::fs::read_to_string(d.0.join("pip.log")).unwrap();
        assert_eq!(
            pip,
            format!(
                "-m pip --version\n-m pip install --quiet --disable-pip-version-check {COMPONENTIZE_PY}\n"
            )
        );
    }

    #[test]
    fn without_python_componentize_py_fails_at_once_naming_what_to_install() {
        let (_d, path) = bin_dir(&[]);
        let e = ensure_componentize_py(&path).unwrap_err();
        assert!(
            e.starts_with(
                "the Python flow tests need componentize-py, installed with pip, and `python3` \
                 is not on PATH: install Python 3 with pip"
            ) && e.ends_with("python3 -m pip install 'componentize-py==0.25.1'"),
            "{e}"
        );
    }

    #[test]
    fn a_pip_that_leaves_another_componentize_py_first_on_path_is_an_error() {
        let (_d, path) = bin_dir(&[
            ("python3", "exit 0"),
            ("componentize-py", "echo 'componentize-py 0.19.0'"),
        ]);
        let e = ensure_componentize_py(&path).unwrap_err();
        assert!(
            e.contains("`componentize-py --version` on PATH says `componentize-py 0.19.0`"),
            "{e}"
        );
    }

    /// `dir/browser`, the browser tests' folder, with its lock file.
    fn npm_folder(dir: &Path) -> PathBuf {
        let npm = dir.join("browser");
        std::fs::create_dir_all(&npm).unwrap();
        std::fs::write(npm.join("package-lock.json"), "{}").unwrap();
        npm
    }

    /// A PATH folder with a fake `node` printing `version`, a fake `npm` (logging its
    /// arguments and folder to `npm.log` beside itself, and writing the marker `npm ci`
    /// writes) and `more` scripts; the folder also holds the browser tests' folder `browser`, and
    /// Chromium is expected at `chromium` in it.
    fn browser_world(
        version: &str,
        more: &[(&str, &str)],
    ) -> (tempfile_free::Dir, OsString, PathBuf, PathBuf) {
        let node = format!("echo {version}");
        let npm = "echo \"$* in ${PWD##*/}\" >> \"${0%/*}/npm.log\"; mkdir -p node_modules; \
                   echo '{}' > node_modules/.package-lock.json";
        let mut scripts = vec![("node", node.as_str()), ("npm", npm)];
        scripts.extend_from_slice(more);
        let (d, path) = bin_dir(&scripts);
        let (npm_dir, chromium) = (npm_folder(&d.0), d.0.join("chromium"));
        (d, path, npm_dir, chromium)
    }

    fn setup<'a>(
        path: &'a OsStr,
        npm_dir: &'a Path,
        chromium: &'a Path,
        root_user: bool,
    ) -> BrowserSetup<'a> {
        BrowserSetup {
            path,
            chromium,
            root_user,
            npm_dir,
        }
    }

    fn log(d: &tempfile_free::Dir, name: &str) -> String {
        std::fs::read_to_string(d.0.join(name)).unwrap_or_default()
    }

    #[test]
    fn without_node_it_fails_at_once_naming_node() {
        let (d, path) = bin_dir(&[]);
        let (npm_dir, chromium) = (npm_folder(&d.0), d.0.join("chromium"));
        let e = ensure_browser(&setup(&path, &npm_dir, &chromium, true)).unwrap_err();
        assert!(
            e.contains("Node.js 20 or newer with npm") && e.contains("`node` is not on PATH"),
            "{e}"
        );
    }

    #[test]
    fn an_old_node_is_refused_naming_its_version() {
        let (d, path, npm_dir, chromium) = browser_world("v18.19.1", &[]);
        let e = ensure_browser(&setup(&path, &npm_dir, &chromium, true)).unwrap_err();
        assert!(
            e.contains("Node.js 20 or newer") && e.contains("`node --version` says `v18.19.1`"),
            "{e}"
        );
        assert_eq!(log(&d, "npm.log"), "", "npm ran");
    }

    #[test]
    fn without_postgres_and_not_root_it_fails_naming_apt_get_install_postgresql() {
        let apt = "echo \"$*\" >> \"${0%/*}/apt.log\"";
        let (d, path) = bin_dir(&[("apt-get", apt)]);
        let lib = d.0.join("postgresql");
        std::fs::create_dir_all(lib.join("15/bin")).unwrap();
        let e = ensure_postgres(&path, &lib, false).unwrap_err();
        assert!(
            e.contains(&format!(
                "`initdb` and `postgres` from {}/*/bin",
                lib.display()
            )) && e.contains("(apt-get install postgresql); not root here"),
            "{e}"
        );
        assert_eq!(log(&d, "apt.log"), "", "apt-get ran");
    }

    #[test]
    fn without_postgres_or_apt_get_it_fails_naming_apt_get_install_postgresql() {
        let (d, path) = bin_dir(&[]);
        let e = ensure_postgres(&path, &d.0.join("postgresql"), true).unwrap_err();
        assert!(
            e.contains("(apt-get install postgresql); there is no apt-get here"),
            "{e}"
        );
    }

    #[test]
    fn installed_postgres_needs_nothing() {
        let apt = "echo \"$*\" >> \"${0%/*}/apt.log\"";
        let (d, path) = bin_dir(&[("apt-get", apt)]);
        let bin = d.0.join("postgresql/15/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("initdb"), "").unwrap();
        std::fs::write(bin.join("postgres"), "").unwrap();
        assert_eq!(
            ensure_postgres(&path, &d.0.join("postgresql"), false),
            Ok(())
        );
        assert_eq!(log(&d, "apt.log"), "", "apt-get ran");
    }

    #[test]
    fn without_chromium_and_not_root_it_fails_naming_apt_get_install_chromium() {
        let apt = "echo \"$*\" >> \"${0%/*}/apt.log\"";
        let (d, path, npm_dir, chromium) = browser_world("v20.11.0", &[("apt-get", apt)]);
        let e = ensure_browser(&setup(&path, &npm_dir, &chromium, false)).unwrap_err();
        assert!(
            e.contains(&format!(
                "Chromium at {}, which is missing",
                chromium.display()
            )) && e.contains("(apt-get install chromium); not root here"),
            "{e}"
        );
        assert_eq!(log(&d, "apt.log"), "", "apt-get ran");
    }

    #[test]
    fn without_chromium_or_apt_get_it_fails_naming_apt_get_install_chromium() {
        let (_d, path, npm_dir, chromium) = browser_world("v22.1.0", &[]);
        let e = ensure_browser(&setup(&path, &npm_dir, &chromium, true)).unwrap_err();
        assert!(
            e.contains("(apt-get install chromium); there is no apt-get here"),
            "{e}"
        );
    }

    #[test]
    fn as_root_it_installs_chromium_updating_the_lists_when_the_first_install_fails() {
        // apt-get cannot install until `update` ran, then "installs" Chromium.
        let apt = "dir=\"${0%/*}\"; echo \"$*\" >> \"$dir/apt.log\"; case \"$1\" in \
                   update) touch \"$dir/updated\";; \
                   install) [ -e \"$dir/updated\" ] || exit 100; touch \"$dir/chromium\";; esac";
        let (d, path, npm_dir, chromium) = browser_world("v20.11.0", &[("apt-get", apt)]);
        assert_eq!(
            ensure_browser(&setup(&path, &npm_dir, &chromium, true)),
            Ok(())
        );
        let install = "install -y -q --no-install-recommends chromium";
        assert_eq!(
            log(&d, "apt.log"),
            format!("{install}\nupdate -q\n{install}\n")
        );
        assert!(chromium.exists());
        // Then npm ci, in the browser tests' folder.
        assert_eq!(log(&d, "npm.log"), "ci --no-audit --no-fund in browser\n");
    }

    #[test]
    fn npm_ci_runs_only_when_node_modules_is_missing_or_older_than_the_lock_file() {
        let (d, path, npm_dir, chromium) = browser_world("v20.11.0", &[]);
        std::fs::write(&chromium, "").unwrap();
        let s = setup(&path, &npm_dir, &chromium, false);
        assert_eq!(ensure_browser(&s), Ok(()));
        assert_eq!(
            log(&d, "npm.log"),
            "ci --no-audit --no-fund in browser\n",
            "missing"
        );
        assert_eq!(ensure_browser(&s), Ok(()));
        assert_eq!(
            log(&d, "npm.log").lines().count(),
            1,
            "up to date: not again"
        );
        // A lock file changed after the install (e.g. by a pull) makes it stale.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(npm_dir.join("package-lock.json"))
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(ensure_browser(&s), Ok(()));
        assert_eq!(
            log(&d, "npm.log").lines().count(),
            2,
            "stale: installed again"
        );
    }
}
