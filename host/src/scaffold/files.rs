//! The files of a flow project, embedded in the binary: `templates/` (the manifest, the
//! `.gitignore` and each language's sources), `sdks/` (the Python and JavaScript SDKs),
//! `flows/sdk/src/` (the Rust SDK) and `wit/flow.wit` (the host's own contract, so a project
//! always matches the host that wrote it). A file added to one of those folders is picked up
//! by the next host build without a code change (host/build.rs watches them).

use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir};

use super::Lang;

static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../templates");
static SDKS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../sdks");
static RUST_SDK: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../flows/sdk/src");

/// The host's WIT contract (`flowhost:flow@…`), as `wit/flow.wit` of every project.
pub const WIT: &str = include_str!("../../../wit/flow.wit");

/// The string replaced by the flow's name in every template file.
pub const NAME_PLACEHOLDER: &str = "{{name}}";

/// One file of a project: where it goes (relative to the project folder) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// Every file of `dir` (recursively), placed under `to`, skipping Python caches and
/// node_modules.
fn files_of(dir: &Dir<'static>, to: &Path, out: &mut Vec<ProjectFile>) {
    for f in dir.files() {
        let rel = f.path().strip_prefix(dir.path()).unwrap_or(f.path());
        out.push(ProjectFile {
            path: to.join(rel),
            bytes: f.contents().to_vec(),
        });
    }
    for d in dir.dirs() {
        let Some(leaf) = d.path().file_name() else {
            continue;
        };
        if leaf == "__pycache__" || leaf == "node_modules" {
            continue;
        }
        files_of(d, &to.join(leaf), out);
    }
}

fn sub(root: &'static Dir<'static>, path: &str) -> Option<&'static Dir<'static>> {
    root.get_dir(path)
}

/// The files a project needs besides its own sources, which `flowhost build` writes when
/// they are missing: the WIT and the language's SDK.
pub fn support_files(lang: Lang) -> Vec<ProjectFile> {
    let mut out = vec![ProjectFile {
        path: "wit/flow.wit".into(),
        bytes: WIT.as_bytes().to_vec(),
    }];
    match lang {
        Lang::Rust => {
            files_of(&RUST_SDK, Path::new("vendor/flowhost-sdk/src"), &mut out);
            if let Some(f) = TEMPLATES.get_file("rust/vendor/flowhost-sdk/Cargo.toml") {
                out.push(ProjectFile {
                    path: "vendor/flowhost-sdk/Cargo.toml".into(),
                    bytes: f.contents().to_vec(),
                });
            }
        }
        Lang::Python => {
            if let Some(d) = sub(&SDKS, "python/flowhost_sdk") {
                files_of(d, Path::new("flowhost_sdk"), &mut out);
            }
        }
        Lang::JavaScript => {
            // The SDK's modules and their types, beside app.js (not its package files).
            if let Some(d) = sub(&SDKS, "javascript") {
                for f in d.files() {
                    let name = f.path().file_name().and_then(|n| n.to_str()).unwrap_or("");
                    if name.ends_with(".js") || name.ends_with(".mjs") || name.ends_with(".d.ts") {
                        out.push(ProjectFile {
                            path: name.into(),
                            bytes: f.contents().to_vec(),
                        });
                    }
                }
            }
        }
    }
    out
}

/// Every file `flowhost new NAME --lang LANG` writes, `{{name}}` replaced in the template
/// files: the manifest, `.gitignore`, the language's template and the support files.
pub fn project_files(lang: Lang, name: &str) -> Vec<ProjectFile> {
    let fill = |bytes: &[u8]| match std::str::from_utf8(bytes) {
        Ok(text) => text.replace(NAME_PLACEHOLDER, name).into_bytes(),
        Err(_) => bytes.to_vec(),
    };
    let mut out = Vec::new();
    if let Some(f) = TEMPLATES.get_file("flow.yaml") {
        out.push(ProjectFile {
            path: format!("{name}.yaml").into(),
            bytes: fill(f.contents()),
        });
    }
    if let Some(f) = TEMPLATES.get_file("gitignore") {
        out.push(ProjectFile {
            path: ".gitignore".into(),
            bytes: f.contents().to_vec(),
        });
    }
    let support = support_files(lang);
    if let Some(d) = sub(&TEMPLATES, lang.name()) {
        let mut template = Vec::new();
        files_of(d, Path::new(""), &mut template);
        for mut f in template {
            // The vendored SDK's Cargo.toml is a support file (no `{{name}}` in it).
            if support.iter().any(|s| s.path == f.path) {
                continue;
            }
            f.bytes = fill(&f.bytes);
            out.push(f);
        }
    }
    out.extend(support);
    out
}

/// The template of the manifest (`templates/flow.yaml`), `{{name}}` not yet replaced.
pub fn manifest_template() -> &'static str {
    TEMPLATES
        .get_file("flow.yaml")
        .and_then(|f| f.contents_utf8())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The manifest template with one example block (a run of `# ` lines) uncommented, for
    /// each block; the `## ` lines stay comments.
    fn each_example(template: &str) -> Vec<(String, String)> {
        let lines: Vec<&str> = template.lines().collect();
        let mut blocks = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            if !lines[i].starts_with("# ") {
                i += 1;
                continue;
            }
            let start = i;
            while i < lines.len() && lines[i].starts_with("# ") {
                i += 1;
            }
            let text: Vec<&str> = lines
                .iter()
                .enumerate()
                .map(|(n, l)| match (start..i).contains(&n) {
                    true => &l[2..],
                    false => l,
                })
                .collect();
            blocks.push((lines[start..i].join("\n"), text.join("\n")));
        }
        blocks
    }

    #[test]
    fn every_example_of_the_manifest_template_loads_through_the_manifest_parser() {
        let template = manifest_template().replace(NAME_PLACEHOLDER, "hello");
        let path = Path::new("hello.yaml");
        let plain = crate::manifest::Manifest::parse(path, &template).unwrap();
        assert_eq!(plain.title, "hello");
        assert_eq!(plain.grants, Grants::default(), "no grants");
        assert!(plain.schedule.is_none());
        let blocks = each_example(&template);
        for (block, text) in &blocks {
            if let Err(e) = crate::manifest::Manifest::parse(path, text) {
                panic!("this example does not load: {e}\n{block}");
            }
        }
        // Every kind of grant and setting a manifest knows is shown.
        let all: String = blocks.iter().map(|b| b.0.as_str()).collect();
        for key in [
            "grants:",
            "hosts:",
            "tables:",
            "read:",
            "write:",
            "flows:",
            "secrets:",
            "blobs:",
            "schedule:",
            "every:",
            "cron:",
            "timezone:",
            "input:",
            "exclusive:",
            "overlap:",
            "timeout:",
            "memory:",
            "run_memory:",
            "sensitive:",
            "enabled:",
            "api:",
        ] {
            assert!(all.contains(key), "the template shows no `{key}`");
        }
        // The grants block, uncommented, grants what it says.
        let grants = blocks
            .iter()
            .find(|b| b.0.starts_with("# grants:"))
            .map(|b| crate::manifest::Manifest::parse(path, &b.1).unwrap())
            .unwrap();
        assert!(grants.grants.can_read("Execution Log"));
        assert!(grants.grants.can_write("Audit Checkpoints"));
        assert!(grants.grants.can_write_blob("archive"));
    }

    use crate::manifest::Grants;

    /// The `NAME = …` line of `toml` (the first), trimmed.
    fn dependency_line<'a>(toml: &'a str, name: &str) -> &'a str {
        toml.lines()
            .map(str::trim)
            .find(|l| l.starts_with(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("no `{name} = ` line in\n{toml}"))
    }

    #[test]
    fn the_vendored_sdk_and_the_rust_template_use_the_flows_dependency_versions() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let flows = std::fs::read_to_string(root.join("flows/Cargo.toml")).unwrap();
        let sdk = TEMPLATES
            .get_file("rust/vendor/flowhost-sdk/Cargo.toml")
            .and_then(|f| f.contents_utf8())
            .unwrap();
        let template = TEMPLATES
            .get_file("rust/Cargo.toml")
            .and_then(|f| f.contents_utf8())
            .unwrap();
        for dep in ["wit-bindgen", "serde", "serde_json"] {
            assert_eq!(
                dependency_line(sdk, dep),
                dependency_line(&flows, dep),
                "{dep}"
            );
        }
        for dep in ["serde", "serde_json"] {
            assert_eq!(
                dependency_line(template, dep),
                dependency_line(&flows, dep),
                "{dep}"
            );
        }
        // The SDK's sources are the host's, file for file.
        let ours: Vec<&str> = RUST_SDK.files().filter_map(|f| f.path().to_str()).collect();
        assert!(
            ours.contains(&"lib.rs") && ours.contains(&"tables.rs"),
            "{ours:?}"
        );
    }

    #[test]
    fn every_project_file_has_the_name_filled_in() {
        for lang in Lang::ALL {
            let files = project_files(lang, "hello");
            let paths: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
            for want in ["hello.yaml", ".gitignore", "wit/flow.wit", lang.source()] {
                assert!(
                    paths.iter().any(|p| p == want),
                    "{lang}: no {want} in {paths:?}"
                );
            }
            for f in &files {
                let text = String::from_utf8_lossy(&f.bytes);
                assert!(
                    !text.contains(NAME_PLACEHOLDER),
                    "{lang}: {}",
                    f.path.display()
                );
            }
        }
    }
}
