//! `flowhost build DIR`: finds the project's language and flow name, writes the support files
//! it lacks (never overwriting one), runs the language's own tool with its output shown, and
//! checks `DIR/dist/NAME.wasm` the way the host will load it (it compiles, and every import is
//! one the host provides).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::files::support_files;
use super::Lang;

/// The componentize-py release Python flows are built with.
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
/// The oldest Node.js that builds a JavaScript flow.
pub const NODE_MAJOR: u32 = 20;
/// The Rust target flows are built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "{0}: not a flow project (expected Cargo.toml, app.py, or package.json with app.js; \
         `flowhost new` writes one)"
    )]
    NotAProject(PathBuf),
    #[error("{dir}: a flow project has exactly one NAME.yaml manifest, found {found}")]
    Manifests { dir: PathBuf, found: String },
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    /// A tool the language needs is missing: the message says what to install.
    #[error("{0}")]
    MissingTool(String),
    #[error("`{command}` failed ({status}) in {dir}")]
    ToolFailed {
        command: String,
        status: String,
        dir: PathBuf,
    },
    #[error("`{command}` did not write {path}")]
    NoOutput { command: String, path: PathBuf },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error(transparent)]
    Rejected(#[from] crate::engine::EngineError),
}

impl BuildError {
    /// 2 for what the user must fix before building (a tool to install, the project's
    /// layout); 1 when the build itself failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            BuildError::NotAProject(_)
            | BuildError::Manifests { .. }
            | BuildError::Manifest(_)
            | BuildError::MissingTool(_) => 2,
            _ => 1,
        }
    }
}

/// A built project: its flow's name, language, component and manifest.
#[derive(Debug, Clone)]
pub struct Built {
    pub name: String,
    pub lang: Lang,
    pub wasm: PathBuf,
    pub manifest: PathBuf,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> BuildError + '_ {
    move |e| BuildError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// The project's language, from its files.
pub fn detect(dir: &Path) -> Result<Lang, BuildError> {
    if dir.join("Cargo.toml").is_file() {
        Ok(Lang::Rust)
    } else if dir.join("app.py").is_file() {
        Ok(Lang::Python)
    } else if dir.join("package.json").is_file() && dir.join("app.js").is_file() {
        Ok(Lang::JavaScript)
    } else {
        Err(BuildError::NotAProject(dir.to_path_buf()))
    }
}

/// The project's one `*.yaml` manifest, checked with the host's parser.
pub fn manifest(dir: &Path) -> Result<(String, PathBuf), BuildError> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml") && p.is_file())
        .collect();
    found.sort();
    if found.len() != 1 {
        let names: Vec<String> = found
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        return Err(BuildError::Manifests {
            dir: dir.to_path_buf(),
            found: if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            },
        });
    }
    let path = found.remove(0);
    let m = crate::manifest::Manifest::load(&path)?;
    Ok((m.name, path))
}

/// Writes the support files (`wit/flow.wit`, the SDK) the project lacks; returns those it
/// wrote. A file that is there is left as it is.
pub fn write_missing_support(dir: &Path, lang: Lang) -> Result<Vec<PathBuf>, BuildError> {
    let mut wrote = Vec::new();
    for f in support_files(lang) {
        let path = dir.join(&f.path);
        if path.exists() {
            continue;
        }
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(io(p))?;
        }
        std::fs::write(&path, &f.bytes).map_err(io(&path))?;
        wrote.push(f.path);
    }
    Ok(wrote)
}

/// Builds the project in `dir` into `dir/dist/NAME.wasm` and checks the component.
pub fn build(dir: &Path) -> Result<Built, BuildError> {
    let lang = detect(dir)?;
    let (name, manifest) = manifest(dir)?;
    check_tools(lang)?;
    write_missing_support(dir, lang)?;
    let dist = dir.join("dist");
    std::fs::create_dir_all(&dist).map_err(io(&dist))?;
    let wasm = dist.join(format!("{name}.wasm"));
    match lang {
        Lang::Python => {
            let out = format!("dist/{name}.wasm");
            let mut cmd = Command::new("componentize-py");
            cmd.args(["-d", "wit", "-w", "flow", "componentize", "app", "-o", &out]);
            run_shown(&mut cmd, dir)?;
        }
        Lang::JavaScript => {
            if !dir.join("node_modules").is_dir() {
                run_shown(
                    Command::new("npm").args(["install", "--no-audit", "--no-fund"]),
                    dir,
                )?;
            }
            run_shown(Command::new("npm").args(["run", "build"]), dir)?;
        }
        Lang::Rust => {
            let built = cargo_build(dir)?;
            std::fs::copy(&built, &wasm).map_err(io(&wasm))?;
        }
    }
    if !wasm.is_file() {
        return Err(BuildError::NoOutput {
            command: lang_command(lang).into(),
            path: wasm,
        });
    }
    let bytes = std::fs::read(&wasm).map_err(io(&wasm))?;
    crate::engine::check_component(&bytes, &wasm)?;
    Ok(Built {
        name,
        lang,
        wasm,
        manifest,
    })
}

fn lang_command(lang: Lang) -> &'static str {
    match lang {
        Lang::Python => "componentize-py componentize",
        Lang::JavaScript => "npm run build",
        Lang::Rust => "cargo build --release --target wasm32-wasip2",
    }
}

/// The words of `cmd`, for messages.
fn shown(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The output of `program ARGS` when it runs and succeeds; `None` when it is not on PATH.
fn probe(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Fails with one line naming what to install when the language's tools are missing.
pub fn check_tools(lang: Lang) -> Result<(), BuildError> {
    let missing = |m: String| Err(BuildError::MissingTool(m));
    match lang {
        Lang::Python => {
            if probe("componentize-py", &["--version"]).is_none() {
                return missing(format!(
                    "building a Python flow needs componentize-py, which is not on PATH: \
                     install it with `python3 -m pip install {COMPONENTIZE_PY}`"
                ));
            }
        }
        Lang::JavaScript => {
            let need = format!("building a JavaScript flow needs Node.js {NODE_MAJOR}+ with npm");
            let Some(version) = probe("node", &["--version"]) else {
                return missing(format!(
                    "{need}, and `node` is not on PATH: install Node.js {NODE_MAJOR} or newer with npm"
                ));
            };
            let major = version
                .strip_prefix('v')
                .and_then(|v| v.split('.').next())
                .and_then(|m| m.parse::<u32>().ok());
            if major.is_none_or(|m| m < NODE_MAJOR) {
                return missing(format!(
                    "{need}, and `node --version` says `{version}`: install Node.js {NODE_MAJOR} or newer with npm"
                ));
            }
            if probe("npm", &["--version"]).is_none() {
                return missing(format!(
                    "{need}, and `npm` is not on PATH: install npm (it comes with Node.js {NODE_MAJOR}+)"
                ));
            }
        }
        Lang::Rust => {
            if probe("cargo", &["--version"]).is_none() {
                return missing(format!(
                    "building a Rust flow needs cargo, which is not on PATH: install Rust with \
                     rustup (https://rustup.rs), then `rustup target add {WASM_TARGET}`"
                ));
            }
            let libdir = probe(
                "rustc",
                &["--print", "target-libdir", "--target", WASM_TARGET],
            );
            if !libdir.is_some_and(|d| Path::new(&d).is_dir()) {
                return missing(format!(
                    "building a Rust flow needs the {WASM_TARGET} target, which is not \
                     installed: `rustup target add {WASM_TARGET}`"
                ));
            }
        }
    }
    Ok(())
}

/// Runs `cmd` in `dir` with its output shown as it runs (its standard output on ours for
/// errors, so that `flowhost build`'s own output stays apart); fails naming the command.
fn run_shown(cmd: &mut Command, dir: &Path) -> Result<(), BuildError> {
    let command = shown(cmd);
    let stdout = stderr_as_stdio().map_err(io(dir))?;
    eprintln!("flowhost build: {command}");
    let status = cmd
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .status()
        .map_err(|e| tool_not_started(&command, dir, e))?;
    if !status.success() {
        return Err(BuildError::ToolFailed {
            command,
            status: status.to_string(),
            dir: dir.to_path_buf(),
        });
    }
    Ok(())
}

fn tool_not_started(command: &str, dir: &Path, e: std::io::Error) -> BuildError {
    BuildError::ToolFailed {
        command: command.to_string(),
        status: format!("did not start: {e}"),
        dir: dir.to_path_buf(),
    }
}

fn stderr_as_stdio() -> std::io::Result<Stdio> {
    use std::os::fd::AsFd;
    Ok(Stdio::from(std::io::stderr().as_fd().try_clone_to_owned()?))
}

/// `cargo build --release --target wasm32-wasip2` in `dir` (diagnostics shown as they come);
/// returns the cdylib it built (wherever CARGO_TARGET_DIR puts it).
fn cargo_build(dir: &Path) -> Result<PathBuf, BuildError> {
    let mut cmd = Command::new("cargo");
    cmd.args([
        "build",
        "--release",
        "--target",
        WASM_TARGET,
        "--message-format=json-render-diagnostics",
    ]);
    let command = format!("cargo build --release --target {WASM_TARGET}");
    eprintln!("flowhost build: {command}");
    let out = cmd
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| tool_not_started(&command, dir, e))?;
    if !out.status.success() {
        return Err(BuildError::ToolFailed {
            command,
            status: out.status.to_string(),
            dir: dir.to_path_buf(),
        });
    }
    let mut built = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let cdylib = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
        if !cdylib {
            continue;
        }
        let wasm = msg["filenames"].as_array().and_then(|f| {
            f.iter()
                .filter_map(|f| f.as_str())
                .find(|f| f.ends_with(".wasm"))
        });
        if let Some(w) = wasm {
            built = Some(PathBuf::from(w));
        }
    }
    built.ok_or_else(|| BuildError::NoOutput {
        command,
        path: dir.join("target").join(WASM_TARGET).join("release"),
    })
}
