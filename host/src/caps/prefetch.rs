//! `http.prefetch`: a GET sent ahead for a later run of the same flow, so that a paged API's
//! next page is on its way while this run still stores the current one (M10 asks for the page
//! its requested run will fetch). The later run's `http.send` of the very same request takes
//! the response instead of sending; nothing else changes: that run still reads its own
//! checkpoint, builds its own URL and commits on its own. A request that differs in anything
//! (a renewed token, another offset) is sent as usual, and an unused prefetch is dropped.
//!
//! Kept per [`crate::runtime::Runtime`]: at most [`SLOTS`] at a time, each for [`TTL`]. A
//! prefetch is sent by the same code as `http.send` (grants, rate-limit budget, retries) with
//! its own deadline of [`TTL`]. A transport error, a 429 or a 5xx is not handed over: the
//! later `send` sends again and retries as its policy says. Its log lines show the URL as
//! `caps::http::log_url` does: without query or credentials.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::engine::flowhost::flow::http::{Request, Response};
use crate::engine::WitError;
use crate::runtime::{lock, CallCtx, RunShared};

/// How long a prefetched response may wait for its run.
pub const TTL: Duration = Duration::from_secs(60);
/// Prefetches kept at once; a new one past this drops the oldest.
pub const SLOTS: usize = 4;

/// The prefetches of one runtime.
#[derive(Default)]
pub struct Prefetches {
    slots: Mutex<VecDeque<Prefetch>>,
}

struct Prefetch {
    flow: String,
    request: Request,
    started: Instant,
    task: JoinHandle<Result<Response, WitError>>,
}

impl Prefetch {
    fn is_for(&self, flow: &str, req: &Request) -> bool {
        self.flow == flow
            && self.request.method.eq_ignore_ascii_case(&req.method)
            && self.request.url == req.url
            && self.request.headers == req.headers
            && self.request.body == req.body
    }
}

impl Prefetches {
    /// Sends `req` (checked by the caller: granted, GET or HEAD) in the background for a later
    /// run of `ctx`'s flow, unless the same request is already on its way.
    pub fn start(&self, ctx: &CallCtx, method: reqwest::Method, url: reqwest::Url, req: Request) {
        let mut slots = lock(&self.slots);
        slots.retain(|p| {
            let fresh = p.started.elapsed() < TTL;
            if !fresh {
                p.task.abort();
            }
            fresh
        });
        if slots.iter().any(|p| p.is_for(ctx.name(), &req)) {
            return;
        }
        while slots.len() >= SLOTS {
            if let Some(oldest) = slots.pop_front() {
                oldest.task.abort();
            }
        }
        let started = Instant::now();
        // Not part of this run: its own deadline, and none of the run's state kept alive.
        let ahead = CallCtx {
            run: Arc::new(RunShared::new(ctx.run.id, None)),
            deadline: started + TTL,
            ..ctx.clone()
        };
        let request = req.clone();
        let task = tokio::spawn(async move { super::http::send(&ahead, method, url, req).await });
        slots.push_back(Prefetch {
            flow: ctx.name().to_string(),
            request,
            started,
            task,
        });
    }

    /// The response prefetched for exactly this request of `ctx`'s flow, waiting for it if it
    /// is still on its way (within `ctx`'s deadline); `None` when there is none to use.
    pub async fn take(&self, ctx: &CallCtx, req: &Request) -> Option<Response> {
        let found = {
            let mut slots = lock(&self.slots);
            let i = slots.iter().position(|p| p.is_for(ctx.name(), req))?;
            slots.remove(i)?
        };
        if found.started.elapsed() >= TTL {
            found.task.abort();
            return None;
        }
        let abort = found.task.abort_handle();
        match tokio::time::timeout(ctx.remaining(), found.task).await {
            Ok(Ok(Ok(resp))) if resp.status != 429 && resp.status < 500 => {
                let url = reqwest::Url::parse(&req.url)
                    .map(|u| super::http::log_url(&u))
                    .unwrap_or_default();
                tracing::debug!(flow = ctx.name(), url, "using the prefetched response");
                Some(resp)
            }
            Err(_) => {
                abort.abort();
                None
            }
            _ => None,
        }
    }
}
