//! The capabilities a flow imports, one module each. Every host call starts by checking the
//! calling flow's grants (from its manifest, plus the operator's config); nothing here trusts
//! the guest. The WIT contract is `wit/flow.wit`.
//!
//! | module | interface | grant checked |
//! |---|---|---|
//! | `http` | `http.send` | `grants.hosts` |
//! | `prefetch` | `http.prefetch` (GETs sent ahead for a later run of the flow) | `grants.hosts` |
//! | `tables` | `tables.*` | `grants.tables.read` / `.write` |
//! | `upsert_queue` | the run's queued upserts: written in batches by a blocking task, before any other table call, and at the run's end | (`tables`) |
//! | `cells` | `tables.upsert-row`'s typed rows → the fields the store checks | (`tables`) |
//! | `guest_row` | `tables.upsert-row`'s row, read from the flow's memory in one pass by its canonical-ABI layout | (`tables`) |
//! | `flows` | `flows.call`, `flows.for-each`, `flows.item-result` | `grants.flows` |
//! | `for_each` | how a for-each runs its children: workers, `run-many` batches, results in order | (`flows`) |
//! | `schedule` | `schedule.*` | `grants.flows` for `request-run` of another flow |
//! | `secrets` | `secrets.get` | `grants.secrets` |
//! | `blobs` | `blobs.*` | `grants.blobs.read` / `.write` (not transactional: see the module) |
//! | `cache` | `cache.*` | none: private to the flow |
//! | `log` | `log.log` | none |
//! | `grants` | `grants.granted-urls` (what other flows may reach) | none: anyone may ask |

pub mod blobs;
pub mod cache;
pub mod cells;
pub mod flows;
pub mod for_each;
pub mod grants;
pub mod guest_row;
pub mod http;
pub mod log;
pub mod prefetch;
pub mod schedule;
pub mod secrets;
pub mod tables;
pub mod upsert_queue;

use crate::engine::{flowhost::flow::types, RunState};

impl types::Host for RunState {}
