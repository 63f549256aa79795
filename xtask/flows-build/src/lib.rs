//! Building the flows workspace (`flows/`) for `wasm32-wasip2`, in one place for its two users:
//! `cargo xtask flows` (which lays the result out as `flows/dist` and `flows/dist-test`) and
//! the host's build script (which embeds the ASA package in the `flowhost` binary).
//!
//! Both run the very same cargo command with the very same environment, so each finds the
//! other's build up to date in `flows/target` and nothing is built twice. The environment cargo
//! gives a build script (`CARGO_ENCODED_RUSTFLAGS`, `CARGO_TARGET_DIR`, a `RUSTC_WRAPPER` set
//! by clippy, ...) is removed: the flows are a different workspace for a different target.
//!
//! Standard library only: it is a build dependency of the host.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub type Result<T> = std::result::Result<T, String>;

/// The target every flow is built for.
pub const TARGET: &str = "wasm32-wasip2";

/// What to run when the target is missing.
pub const ADD_TARGET: &str = "rustup target add wasm32-wasip2";

/// One built flow: its group (`asa` or `test`), its name (its manifest's file stem), its
/// manifest and its component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltFlow {
    pub group: String,
    pub name: String,
    pub manifest: PathBuf,
    pub wasm: PathBuf,
}

/// The groups of flows under `flows/`, in the order they are laid out.
pub const GROUPS: [&str; 2] = ["asa", "test"];

/// The files and folders whose change means the flows must be built again (for a build
/// script's `rerun-if-changed`): the workspace's manifests and every crate's sources, never
/// its `target/` or the laid-out `dist` folders.
pub fn inputs(flows: &Path) -> Vec<PathBuf> {
    let mut v = vec![
        flows.join("Cargo.toml"),
        flows.join("Cargo.lock"),
        flows.join("sdk"),
    ];
    v.extend(GROUPS.iter().map(|g| flows.join(g)));
    v
}

/// Cargo as the environment names it (`CARGO`), else from PATH.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Whether an environment variable would leak the outer build into the flows' build: every
/// `CARGO_*` variable cargo sets for a build script or a `cargo run` (flags, target and target
/// folder, profile settings, package metadata), the wrappers `cargo clippy` installs, and
/// `RUSTC`/`RUSTDOC` as cargo resolved them. What only says where and how to download
/// (`CARGO_HOME`, `CARGO_NET_*`, `CARGO_HTTP_*`, `CARGO_REGISTRIES_*`, `CARGO_REGISTRY_*`) and
/// the jobserver (`CARGO_MAKEFLAGS`, so the nested build shares the outer build's jobs) stay.
pub fn leaks_into_nested_cargo(name: &str) -> bool {
    const KEEP: [&str; 6] = [
        "CARGO_HOME",
        "CARGO_MAKEFLAGS",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
    ];
    if name.starts_with("CARGO_") {
        return !KEEP
            .iter()
            .any(|k| name == *k || (k.ends_with('_') && name.starts_with(k)));
    }
    matches!(
        name,
        "CARGO"
            | "RUSTC"
            | "RUSTDOC"
            | "RUSTC_WORKSPACE_WRAPPER"
            | "CLIPPY_ARGS"
            | "__CARGO_FIX_PLZ"
    ) || name.starts_with("__CARGO")
}

/// `rustup target list --installed` says whether the wasm target is there: `Some(true|false)`,
/// or `None` without rustup (a toolchain set up by other means; cargo will say if it lacks it).
pub fn wasm_target_installed() -> Option<bool> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.trim() == TARGET),
    )
}

/// The command that builds every flow crate of the workspace at `flows` (into `flows/target`).
pub fn build_command(flows: &Path) -> Command {
    let mut cmd = cargo();
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(leaks_into_nested_cargo) {
            cmd.env_remove(&name);
        }
    }
    cmd.current_dir(flows)
        .args(["build", "--release", "--target", TARGET, "--workspace"]);
    cmd.arg("--exclude").arg("asa-lib");
    cmd.arg("--target-dir").arg(flows.join("target"));
    cmd
}

/// Builds every flow in the workspace at `flows` and returns them, group by group, sorted by
/// crate folder. Cargo's output goes to stderr (a build script's stdout is for cargo).
pub fn build(flows: &Path) -> Result<Vec<BuiltFlow>> {
    let mut cmd = build_command(flows);
    eprintln!("flows-build: $ {}", show(&cmd));
    let status = cmd
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| format!("cannot start `{}`: {e}", show(&cmd)))?;
    if !status.success() {
        let hint = match wasm_target_installed() {
            Some(false) => format!(" (the {TARGET} target is not installed: run `{ADD_TARGET}`)"),
            _ => String::new(),
        };
        return Err(format!("`{}` failed ({status}){hint}", show(&cmd)));
    }
    built(flows)
}

/// The flows a finished build left in `flows/target`: every `NAME.yaml` in a crate folder of a
/// group, with the crate's component.
pub fn built(flows: &Path) -> Result<Vec<BuiltFlow>> {
    let out = flows.join("target").join(TARGET).join("release");
    let mut v = Vec::new();
    for group in GROUPS {
        for crate_dir in sorted_dirs(&flows.join(group))? {
            let crate_name = crate_dir
                .file_name()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .replace('-', "_");
            for manifest in sorted_files(&crate_dir, "yaml")? {
                let Some(name) = manifest.file_stem().and_then(|s| s.to_str()) else {
                    continue;
                };
                let wasm = out.join(format!("{crate_name}.wasm"));
                if !wasm.exists() {
                    return Err(format!(
                        "{} was not built (is {} a cdylib?)",
                        wasm.display(),
                        crate_dir.display()
                    ));
                }
                v.push(BuiltFlow {
                    group: group.to_string(),
                    name: name.to_string(),
                    manifest: manifest.clone(),
                    wasm,
                });
            }
        }
    }
    Ok(v)
}

/// The sub-folders of `dir` that are crates, sorted.
pub fn sorted_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.join("Cargo.toml").exists())
        .collect();
    v.sort();
    Ok(v)
}

/// The files of `dir` with extension `ext`, sorted.
pub fn sorted_files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect();
    v.sort();
    Ok(v)
}

/// Copies only when the bytes differ, so an unchanged file keeps its modification time: a
/// running `flowhost serve` sees no change, and nothing that includes the file recompiles.
pub fn copy_if_changed(from: &Path, to: &Path) -> Result<()> {
    let new = std::fs::read(from).map_err(|e| format!("{}: {e}", from.display()))?;
    if std::fs::read(to).ok().as_deref() == Some(new.as_slice()) {
        return Ok(());
    }
    let tmp = to.with_extension("tmp");
    std::fs::write(&tmp, &new).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, to).map_err(|e| format!("{}: {e}", to.display()))
}

/// A command as a shell line, for echoing.
pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.contains(' ') || a.contains('{') {
            s.push_str(&format!(" '{a}'"));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_cargo_sets_for_a_build_script_is_not_passed_on() {
        for leak in [
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_TARGET",
            "CARGO_PROFILE_RELEASE_LTO",
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_CFG_TARGET_OS",
            "CARGO",
            "RUSTC",
            "RUSTC_WORKSPACE_WRAPPER",
        ] {
            assert!(leaks_into_nested_cargo(leak), "{leak}");
        }
        for keep in [
            "CARGO_HOME",
            "CARGO_MAKEFLAGS",
            "CARGO_NET_OFFLINE",
            "CARGO_HTTP_PROXY",
            "CARGO_REGISTRIES_CRATES_IO_PROTOCOL",
            "PATH",
            "RUSTUP_TOOLCHAIN",
            "RUSTFLAGS",
        ] {
            assert!(!leaks_into_nested_cargo(keep), "{keep}");
        }
    }
}
