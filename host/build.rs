//! Builds the flows workspace (`../flows`, into `../flows/target`, for wasm32-wasip2) with the
//! same command as `cargo xtask flows` (the `flows-build` crate) and embeds the ASA package in
//! the binary: every flow of `flows/asa` (component and manifest) and every table schema of
//! `tables/`. `$OUT_DIR/package.rs` lists them for `src/package.rs`.
//!
//! The components are copied into `$OUT_DIR` only when their bytes changed, so a rebuild of
//! the flows that changes nothing does not recompile the host. Cargo's own check of the flows
//! workspace makes an unchanged flows build a no-op.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    if let Err(e) = embed() {
        // One line cargo shows under "error: failed to run custom build command".
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn embed() -> Result<(), String> {
    let host = PathBuf::from(env("CARGO_MANIFEST_DIR")?);
    let root = host
        .parent()
        .ok_or("the host crate has no parent folder")?
        .to_path_buf();
    let flows = root.join("flows");
    let tables = root.join("tables");
    println!("cargo:rerun-if-changed=build.rs");
    for p in flows_build::inputs(&flows)
        .into_iter()
        .chain([root.join("wit"), tables.clone()])
        // Embedded by `scaffold::files` (include_dir! does not tell cargo on stable).
        .chain([root.join("templates"), root.join("sdks")])
    {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    if flows_build::wasm_target_installed() == Some(false) {
        return Err(format!(
            "flowhost embeds the ASA flows, which are built for {}, and that target is not \
             installed: run `{}` (or `cargo xtask install`, which adds it)",
            flows_build::TARGET,
            flows_build::ADD_TARGET
        ));
    }
    let built = flows_build::build(&flows)?;
    let out = PathBuf::from(env("OUT_DIR")?);
    let dir = out.join("package");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;

    let mut code = String::from(
        "// Written by host/build.rs: the ASA package embedded in the binary.\n\
         pub static FLOWS: &[BuiltinFlow] = &[\n",
    );
    for f in built.iter().filter(|f| f.group == "asa") {
        let wasm = dir.join(format!("{}.wasm", f.name));
        flows_build::copy_if_changed(&f.wasm, &wasm)?;
        let _ = writeln!(
            code,
            "    BuiltinFlow {{ name: {:?}, manifest: include_str!({:?}), wasm: include_bytes!({:?}) }},",
            f.name,
            path_str(&f.manifest)?,
            path_str(&wasm)?
        );
    }
    code.push_str("];\n\npub static TABLES: &[BuiltinTable] = &[\n");
    for t in flows_build::sorted_files(&tables, "yaml")? {
        let file = t
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{}: not a UTF-8 file name", t.display()))?;
        let _ = writeln!(
            code,
            "    BuiltinTable {{ file: {file:?}, text: include_str!({:?}) }},",
            path_str(&t)?
        );
    }
    code.push_str("];\n");
    let list = out.join("package.rs");
    if std::fs::read_to_string(&list).ok().as_deref() != Some(code.as_str()) {
        std::fs::write(&list, code).map_err(|e| format!("{}: {e}", list.display()))?;
    }
    Ok(())
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("cargo did not set {name}"))
}

fn path_str(p: &Path) -> Result<&str, String> {
    p.to_str()
        .ok_or_else(|| format!("{}: not a UTF-8 path", p.display()))
}
