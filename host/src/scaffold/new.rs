//! `flowhost new NAME --lang LANG [--dir DIR]`: writes a flow project into a temporary
//! sibling of DIR and renames it into place, so a failure leaves nothing half-written.

use std::path::{Path, PathBuf};

use super::files::project_files;
use super::Lang;

#[derive(Debug, thiserror::Error)]
pub enum NewError {
    #[error("`{0}` is not a flow name (use letters, digits, - and _)")]
    BadName(String),
    #[error("unknown language `{0}` (use rust, python or javascript)")]
    UnknownLang(String),
    #[error("{0}: exists and is not empty (choose another --dir, or empty it)")]
    NotEmpty(PathBuf),
    #[error("{0}: exists and is not a folder")]
    NotAFolder(PathBuf),
    #[error("{0}: the folder to create the project in does not exist")]
    NoParent(PathBuf),
    #[error("{path}: cannot write: {message}")]
    Write { path: PathBuf, message: String },
}

/// Checks `name` with the host's own rule for flow names (the manifest's file stem).
pub fn check_name(name: &str) -> Result<(), NewError> {
    let as_file = PathBuf::from(format!("{name}.yaml"));
    match crate::manifest::flow_name_from_path(&as_file) {
        Ok(stem) if stem == name => Ok(()),
        _ => Err(NewError::BadName(name.to_string())),
    }
}

/// Writes the project of flow `name` in `lang` into `dir` (which must not exist, or be an
/// empty folder); returns `dir`.
pub fn create(name: &str, lang: &str, dir: &Path) -> Result<PathBuf, NewError> {
    check_name(name)?;
    let lang = Lang::parse(lang).ok_or_else(|| NewError::UnknownLang(lang.to_string()))?;
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(NewError::NotEmpty(dir.to_path_buf()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) if dir.exists() => return Err(NewError::NotAFolder(dir.to_path_buf())),
        Err(e) => {
            return Err(NewError::Write {
                path: dir.to_path_buf(),
                message: e.to_string(),
            })
        }
    }
    let parent = match dir.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => return Err(NewError::NoParent(dir.to_path_buf())),
    };
    if !parent.is_dir() {
        return Err(NewError::NoParent(parent.to_path_buf()));
    }
    let tmp = parent.join(format!(".{name}.flowhost-new-{}", std::process::id()));
    let written = write_all(&tmp, lang, name).and_then(|()| {
        std::fs::rename(&tmp, dir).map_err(|e| NewError::Write {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })
    });
    if written.is_err() {
        // Best effort: the error the user sees is the write's, not the clean-up's.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    written.map(|()| dir.to_path_buf())
}

fn write_all(root: &Path, lang: Lang, name: &str) -> Result<(), NewError> {
    for f in project_files(lang, name) {
        let path = root.join(&f.path);
        let fail = |e: std::io::Error| NewError::Write {
            path: path.clone(),
            message: e.to_string(),
        };
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(fail)?;
        }
        std::fs::write(&path, &f.bytes).map_err(fail)?;
    }
    Ok(())
}

/// What to do after `flowhost new`: the grant the template's table read needs, the build and
/// the run.
pub fn next_steps(name: &str, lang: Lang, dir: &Path) -> String {
    let d = dir.display();
    format!(
        "created flow {name} ({lang}) in {d}\n\
         next:\n\
         \x20 1. edit {d}/{source}. Its table read is refused (access-denied) until {d}/{name}.yaml grants it:\n\
         \x20      grants:\n\
         \x20        tables:\n\
         \x20          read: [Execution Log]\n\
         \x20 2. flowhost build {d} --install FOLDER     (FOLDER: a flows folder of yours)\n\
         \x20 3. flowhost --flows FOLDER run {name} --input '{{\"x\": 1}}'\n",
        source = lang.source()
    )
}
