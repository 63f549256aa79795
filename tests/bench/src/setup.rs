//! Set-up shared by every mode: blob stores so that every flow loads, compiling flows before
//! the clock starts, and the multi-threaded tokio runtime (one worker per core, like the CLI).

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use flowhost::config::BlobStoreConfig;
use flowhost::runtime::Runtime;

/// A multi-threaded tokio runtime with one worker per core.
pub fn tokio_runtime() -> Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .thread_name("bench-worker")
        .enable_all()
        .build()?)
}

/// Prints the load errors of the flow folders (a flow that did not load cannot be measured).
pub fn warn_load_errors(rt: &Runtime) {
    for e in &rt.registry().errors {
        eprintln!("flowhost-bench: warning: {e}");
    }
}

/// Local blob stores in `dir`: `archive` (the default store, which O10 writes) and `scratch`
/// (the probe test flow's), so that every flow in the folders loads.
pub fn blob_stores(dir: &std::path::Path) -> BTreeMap<String, BlobStoreConfig> {
    ["archive", "scratch"]
        .into_iter()
        .map(|name| {
            let path = dir.join("blobs").join(name);
            (name.to_string(), BlobStoreConfig::Local { path })
        })
        .collect()
}

/// Compiles (or loads) `names` now, so the measured part never compiles.
pub fn prewarm(rt: &Runtime, names: &[&str]) -> Result<()> {
    for name in names {
        rt.flow(name)?
            .prepare(&rt.engine)
            .map_err(|e| anyhow!("{name}: {e}"))?;
    }
    Ok(())
}
