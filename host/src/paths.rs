//! Where flowhost finds its config file and keeps its state, so that it works the same from
//! any working directory.
//!
//! - The config file: `--config` (or `FLOWHOST_CONFIG`), else the first of `./flowhost.yaml`,
//!   `$XDG_CONFIG_HOME/flowhost/flowhost.yaml` (`~/.config/flowhost/flowhost.yaml` when unset)
//!   and `/etc/flowhost/flowhost.yaml` that exists; none is fine (the built-in defaults).
//! - The state folder (database, run history, leases, compile cache, the default local blob
//!   archive): `--state-dir` (or `FLOWHOST_STATE_DIR`), else the config file's folder, else
//!   `$XDG_STATE_HOME/flowhost` (`~/.local/state/flowhost` when unset). Explicit `db:`,
//!   `--db` and `cache_dir:` still win (see [`crate::config`]).
//!
//! The XDG variables count only when they hold an absolute path, as the XDG Base Directory
//! specification says.

use std::path::{Path, PathBuf};

/// The config file's name in each place it is looked for.
pub const CONFIG_FILE: &str = "flowhost.yaml";
/// The system-wide config file.
pub const SYSTEM_CONFIG: &str = "/etc/flowhost/flowhost.yaml";

/// The environment variables the locations depend on.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub home: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    pub xdg_state_home: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error(
        "cannot choose a state folder: no config file, and neither XDG_STATE_HOME nor HOME is \
         set to an absolute path (give --state-dir DIR or FLOWHOST_STATE_DIR)"
    )]
    NoStateDir,
}

impl Env {
    /// This process's `HOME`, `XDG_CONFIG_HOME` and `XDG_STATE_HOME`.
    pub fn from_process() -> Env {
        let var = |name: &str| std::env::var_os(name).map(PathBuf::from);
        Env {
            home: var("HOME"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            xdg_state_home: var("XDG_STATE_HOME"),
        }
    }

    /// `$XDG_xxx_HOME`, else `$HOME/<fallback>`; only absolute paths count.
    fn base(&self, xdg: &Option<PathBuf>, fallback: &str) -> Option<PathBuf> {
        let absolute = |p: &Option<PathBuf>| p.clone().filter(|p| p.is_absolute());
        absolute(xdg).or_else(|| absolute(&self.home).map(|h| h.join(fallback)))
    }
}

/// The places a config file is looked for, in order (the first that exists is used).
pub fn config_candidates(env: &Env) -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from(CONFIG_FILE)];
    if let Some(base) = env.base(&env.xdg_config_home, ".config") {
        v.push(base.join("flowhost").join(CONFIG_FILE));
    }
    v.push(PathBuf::from(SYSTEM_CONFIG));
    v
}

/// The first of `candidates` that exists.
pub fn find_config(candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates.iter().find(|p| p.exists()).cloned()
}

/// The state folder: `flag` (`--state-dir`), else the folder of `config` (the config file in
/// use), else `$XDG_STATE_HOME/flowhost` or `~/.local/state/flowhost`.
pub fn state_dir(
    flag: Option<&Path>,
    config: Option<&Path>,
    env: &Env,
) -> Result<PathBuf, PathsError> {
    if let Some(dir) = flag {
        return Ok(dir.to_path_buf());
    }
    if let Some(file) = config {
        return Ok(config_folder(file));
    }
    env.base(&env.xdg_state_home, ".local/state")
        .map(|b| b.join("flowhost"))
        .ok_or(PathsError::NoStateDir)
}

/// The folder of the config file `file` (`.` for a bare file name).
pub fn config_folder(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(home: Option<&str>, config: Option<&str>, state: Option<&str>) -> Env {
        Env {
            home: home.map(PathBuf::from),
            xdg_config_home: config.map(PathBuf::from),
            xdg_state_home: state.map(PathBuf::from),
        }
    }

    #[test]
    fn the_config_is_looked_for_here_then_in_the_user_folder_then_in_etc() {
        let want = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert_eq!(
            config_candidates(&env(Some("/home/u"), None, None)),
            want(&[
                "flowhost.yaml",
                "/home/u/.config/flowhost/flowhost.yaml",
                "/etc/flowhost/flowhost.yaml"
            ])
        );
        assert_eq!(
            config_candidates(&env(Some("/home/u"), Some("/cfg"), None)),
            want(&[
                "flowhost.yaml",
                "/cfg/flowhost/flowhost.yaml",
                "/etc/flowhost/flowhost.yaml"
            ])
        );
        // A relative XDG_CONFIG_HOME is ignored (XDG spec); no HOME: no user folder.
        assert_eq!(
            config_candidates(&env(None, Some("rel"), None)),
            want(&["flowhost.yaml", "/etc/flowhost/flowhost.yaml"])
        );
    }

    #[test]
    fn the_first_existing_candidate_wins_and_etc_is_the_last_resort() {
        let d = tempfile::tempdir().unwrap();
        let (a, etc) = (d.path().join("a.yaml"), d.path().join("etc.yaml"));
        let list = [a.clone(), etc.clone()];
        assert_eq!(find_config(&list), None);
        std::fs::write(&etc, "").unwrap();
        assert_eq!(find_config(&list), Some(etc.clone()));
        std::fs::write(&a, "").unwrap();
        assert_eq!(find_config(&list), Some(a));
    }

    #[test]
    fn state_goes_to_the_flag_else_the_config_folder_else_xdg_state() {
        let e = env(Some("/home/u"), None, Some("/st"));
        let dir = |flag: Option<&str>, config: Option<&str>, e: &Env| {
            state_dir(flag.map(Path::new), config.map(Path::new), e)
                .map(|p| p.display().to_string())
                .map_err(|e| e.to_string())
        };
        assert_eq!(dir(Some("/x"), Some("/c/f.yaml"), &e).unwrap(), "/x");
        assert_eq!(dir(None, Some("/c/f.yaml"), &e).unwrap(), "/c");
        assert_eq!(dir(None, Some("flowhost.yaml"), &e).unwrap(), ".");
        assert_eq!(dir(None, None, &e).unwrap(), "/st/flowhost");
        let home_only = env(Some("/home/u"), None, Some("relative"));
        assert_eq!(
            dir(None, None, &home_only).unwrap(),
            "/home/u/.local/state/flowhost"
        );
        let err = dir(None, None, &env(None, None, None)).unwrap_err();
        assert!(err.contains("give --state-dir DIR"), "{err}");
    }
}
