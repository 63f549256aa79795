//! `flowhost new` and `flowhost build`: flow projects in Rust, Python and JavaScript.
//!
//! - [`files`]: the templates, SDKs and WIT embedded in the binary, laid out per language;
//! - [`new`]: writes a project (`NAME.yaml`, `wit/flow.wit`, the source and the SDK);
//! - [`build`]: runs the language's own tool, checks the component against the host's linker;
//! - [`install`]: copies a built flow into a flows folder without a half-written file.

pub mod build;
pub mod files;
pub mod install;
pub mod new;

/// The languages a flow project can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Python,
    JavaScript,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::Rust, Lang::Python, Lang::JavaScript];

    /// The name `--lang` takes.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::JavaScript => "javascript",
        }
    }

    /// `--lang`'s value, or `None` when it names no language.
    pub fn parse(text: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.name() == text)
    }

    /// The file a user edits.
    pub fn source(self) -> &'static str {
        match self {
            Lang::Rust => "src/lib.rs",
            Lang::Python => "app.py",
            Lang::JavaScript => "app.js",
        }
    }
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
