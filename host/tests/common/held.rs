//! A loopback HTTP server that holds its first answers until the test releases them, so a
//! test can tell "the caller did not wait for this response" by the order of events (the
//! caller returned while the answer did not exist yet) instead of by the clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use tokio::sync::watch;

#[derive(Clone)]
struct Shared {
    /// Requests numbered below this wait for [`Held::release`].
    held: u64,
    received: Arc<AtomicU64>,
    answered: Arc<AtomicU64>,
    released: watch::Receiver<bool>,
}

/// The server; it stops with the test's runtime.
pub struct Held {
    /// `http://127.0.0.1:PORT/held` (any path is served the same way).
    pub url: String,
    shared: Shared,
    release: watch::Sender<bool>,
}

/// Answers request number `n` (from 0) with `200 answer n`, once released if `n < held`.
async fn answer(State(s): State<Shared>) -> String {
    let n = s.received.fetch_add(1, Ordering::SeqCst);
    if n < s.held {
        let mut released = s.released.clone();
        // An error means the test is over: answer anyway.
        let _ = released.wait_for(|r| *r).await;
    }
    s.answered.fetch_add(1, Ordering::SeqCst);
    format!("answer {n}")
}

impl Held {
    /// A server whose first `held` requests get no answer until [`Held::release`].
    pub async fn start(held: u64) -> Held {
        let (release, released) = watch::channel(false);
        let shared = Shared {
            held,
            received: Arc::default(),
            answered: Arc::default(),
            released,
        };
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/held", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Held {
            url,
            shared,
            release,
        }
    }

    /// Requests received so far (answered or held).
    pub fn received(&self) -> u64 {
        self.shared.received.load(Ordering::SeqCst)
    }

    /// Requests answered so far.
    pub fn answered(&self) -> u64 {
        self.shared.answered.load(Ordering::SeqCst)
    }

    /// Lets the held requests (and any later ones) be answered.
    pub fn release(&self) {
        self.release.send_replace(true);
    }
}
