//! `cache.*`: a small in-memory key/value store private to each flow, with expiry. It lives
//! as long as the process and is never written anywhere (U00 keeps the bearer token here).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::engine::flowhost::flow::cache::Host;
use crate::engine::RunState;
use crate::runtime::lock;

/// Entries per flow and bytes per value; beyond them the oldest entry goes / the set is ignored.
const MAX_ENTRIES_PER_FLOW: usize = 1024;
const MAX_VALUE: usize = 64 << 10;

#[derive(Default)]
pub struct FlowCache {
    entries: Mutex<HashMap<(String, String), (String, Instant)>>,
}

impl FlowCache {
    pub fn get(&self, flow: &str, key: &str) -> Option<String> {
        let mut map = lock(&self.entries);
        let k = (flow.to_string(), key.to_string());
        match map.get(&k) {
            Some((v, exp)) if *exp > Instant::now() => Some(v.clone()),
            Some(_) => {
                map.remove(&k);
                None
            }
            None => None,
        }
    }

    pub fn set(&self, flow: &str, key: &str, value: String, ttl: Duration) {
        if value.len() > MAX_VALUE {
            tracing::warn!(flow, "cache value over {MAX_VALUE} bytes ignored");
            return;
        }
        let mut map = lock(&self.entries);
        let now = Instant::now();
        map.retain(|_, (_, exp)| *exp > now);
        if map.keys().filter(|(f, _)| f == flow).count() >= MAX_ENTRIES_PER_FLOW {
            let oldest = map
                .iter()
                .filter(|((f, _), _)| f == flow)
                .min_by_key(|(_, (_, exp))| *exp)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        map.insert((flow.to_string(), key.to_string()), (value, now + ttl));
    }

    pub fn remove(&self, flow: &str, key: &str) {
        lock(&self.entries).remove(&(flow.to_string(), key.to_string()));
    }
}

impl Host for RunState {
    async fn get(&mut self, key: String) -> Option<String> {
        self.ctx.not_a_read();
        self.ctx.rt.cache.get(self.ctx.name(), &key)
    }
    async fn set(&mut self, key: String, value: String, ttl_ms: u64) {
        self.ctx.not_a_read();
        self.ctx
            .rt
            .cache
            .set(self.ctx.name(), &key, value, Duration::from_millis(ttl_ms));
    }
    async fn remove(&mut self, key: String) {
        self.ctx.not_a_read();
        self.ctx.rt.cache.remove(self.ctx.name(), &key);
    }
}
