//! A real PostgreSQL server for tests: the throwaway cluster of the `pg-throwaway` crate
//! (shared with the benchmark), under the names the tests use.

// Each test binary compiles `common` and uses only part of it.
#[allow(unused_imports)]
pub use pg_throwaway::{bin_dir, PgServer, ServerTls};
