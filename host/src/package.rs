//! The ASA package built into the binary: every flow of `flows/asa` (component and manifest)
//! and every table schema of `tables/`, embedded by `host/build.rs` from the same build as
//! `cargo xtask flows`. It is the lowest-priority flows folder and table-schema folder: a flow
//! or table of the same name in a folder of the user's replaces the built-in one (see
//! [`crate::registry::Registry::load`] and [`crate::schema::Schemas::load_with_package`]).
//! Built-ins never change while the binary runs.

use std::path::PathBuf;

/// How `flowhost list` and error messages name where a built-in flow or table comes from.
pub const ORIGIN: &str = "built-in";

/// One flow of the package.
#[derive(Debug)]
pub struct BuiltinFlow {
    pub name: &'static str,
    pub manifest: &'static str,
    pub wasm: &'static [u8],
}

impl BuiltinFlow {
    /// The name its manifest goes by in messages: `built-in/NAME.yaml`.
    pub fn manifest_path(&self) -> PathBuf {
        PathBuf::from(ORIGIN).join(format!("{}.yaml", self.name))
    }
}

/// One table schema of the package.
#[derive(Debug)]
pub struct BuiltinTable {
    /// Its file name in `tables/`.
    pub file: &'static str,
    pub text: &'static str,
}

impl BuiltinTable {
    /// The name it goes by in messages: `built-in/FILE`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(ORIGIN).join(self.file)
    }
}

include!(concat!(env!("OUT_DIR"), "/package.rs"));

/// The package's flows, by name.
pub fn flows() -> &'static [BuiltinFlow] {
    FLOWS
}

/// The package's table schemas, by file name.
pub fn tables() -> &'static [BuiltinTable] {
    TABLES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_asa_package_is_embedded() {
        let names: Vec<&str> = flows().iter().map(|f| f.name).collect();
        for want in ["M10", "S30", "U00", "U02", "U03", "U04", "O10"] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        for f in flows() {
            crate::engine::looks_like_component(f.wasm).unwrap();
            assert!(f.manifest.contains("title:"), "{}", f.name);
        }
        let files: Vec<&str> = tables().iter().map(|t| t.file).collect();
        assert_eq!(
            files,
            [
                "audit-checkpoints.yaml",
                "audit-events.yaml",
                "audit-related-objects.yaml",
                "environment-variables.yaml",
                "execution-log.yaml",
                "rejected-events.yaml"
            ]
        );
    }
}
