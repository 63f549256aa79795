//! `flowhost build --install FOLDER`: copies `NAME.wasm` and `NAME.yaml` into a flows folder so
//! that a running `serve` never sees half a file: each is written to a temporary name in
//! FOLDER (one `serve` ignores: not `.wasm`/`.yaml`) and renamed, the component first and the
//! manifest last.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0}: not a folder (--install names an existing flows folder)")]
    NoFolder(PathBuf),
    #[error("{path}: cannot install: {message}")]
    Write { path: PathBuf, message: String },
}

/// Copies `wasm` and `manifest` into `folder` as `NAME.wasm` and `NAME.yaml`; returns the
/// installed component's path.
pub fn install(
    name: &str,
    wasm: &Path,
    manifest: &Path,
    folder: &Path,
) -> Result<PathBuf, InstallError> {
    if !folder.is_dir() {
        return Err(InstallError::NoFolder(folder.to_path_buf()));
    }
    let component = folder.join(format!("{name}.wasm"));
    put(wasm, &component, folder, name)?;
    put(manifest, &folder.join(format!("{name}.yaml")), folder, name)?;
    Ok(component)
}

/// Copies `from` to a temporary file in `folder`, then renames it to `to`.
fn put(from: &Path, to: &Path, folder: &Path, name: &str) -> Result<(), InstallError> {
    let ext = to.extension().and_then(|e| e.to_str()).unwrap_or("file");
    let tmp = folder.join(format!(
        ".{name}.{ext}.flowhost-install-{}",
        std::process::id()
    ));
    let fail = |e: std::io::Error| InstallError::Write {
        path: to.to_path_buf(),
        message: e.to_string(),
    };
    let done = std::fs::copy(from, &tmp)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, to));
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done.map_err(fail)
}
