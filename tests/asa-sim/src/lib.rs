//! # asa-sim — an Okta Advanced Server Access API simulator
//!
//! This crate owns a loopback HTTP server that behaves like the two ASA
//! endpoints flowhost's audit-capture job uses (see `asa-api.md` §2–§5, §9):
//!
//! * `POST /v1/teams/{team}/service_token` — body `{"key_id","key_secret"}` →
//!   `200 {"bearer_token","expires_at","team_name"}`; a wrong pair → `401
//!   authentication_error`; an unknown team → `404 resource_does_not_exist`;
//!   a body that is not JSON or lacks the two strings → `400 invalid_request`.
//!   The team segment is compared case-insensitively (clients lowercase it).
//! * `GET /v1/teams/{team}/auditsV2?count=&offset=&descending=&prev=` — bearer
//!   check (missing, unknown, revoked or expired → `401 authentication_error`),
//!   then a page `{"list":[...],"related_objects":{...}}` whose
//!   `related_objects` holds exactly the objects referenced by the page's events.
//!
//! It also owns the synthetic data (deterministic per seed, derived on the fly
//! so 10⁶+ events cost no memory), fault injection ([`Fault`]) and a live mode
//! in which events keep arriving. Everything else (the consumer, checkpoints,
//! enrichment) lives elsewhere in flowhost.
//!
//! ## Paging semantics
//!
//! * `count`: default 100; values above 1000 are clamped to 1000; `0` or an
//!   empty value means the default; anything else non-numeric (including
//!   negative numbers) → `400 invalid_request`.
//! * `descending`/`prev`: Go `strconv.ParseBool` spellings (`1`, `true`, `t`,
//!   …); empty = false; anything else → `400`.
//! * Ascending (oldest first) unless `descending=true`.
//! * `offset` = an event id; results start strictly *after* it (exclusive) in
//!   the display order. With `prev=true` the page is the `count` events
//!   strictly *before* it, still listed in the display order. `prev` without
//!   `offset` is ignored. An offset this simulator never issued (or an event
//!   that does not exist yet) → `400 invalid_request`. Unknown parameters are
//!   ignored.
//!
//! ## Retention (the answer to an aged-out offset is unknown in the real API)
//!
//! ASA keeps events for a retention period; asa-api.md does not say what
//! `auditsV2` answers when `offset` names an event that has aged out. The
//! simulator's choice, the most plausible one: the same as for an id it never
//! issued, `400 invalid_request` with the message `invalid offset "<id>": no
//! audit event has this id` (naming the offset). [`Sim::expire_oldest`] ages
//! out the oldest events: they are no longer served (a page without `offset`
//! starts at the oldest retained one, and no `prev` link points before it),
//! and an offset naming one gets that 400. [`Sim::retained_ids`] lists the rest.
//!
//! ## `Link` header (choices where the real API is unknown)
//!
//! * URLs are absolute (`{base_url}/v1/teams/{team}/auditsV2?…`) by default,
//!   or `/v1/teams/…` paths with [`LinkStyle::Relative`].
//! * Query parameters are in Go `url.Values.Encode()` order (alphabetical):
//!   `count` (always present, the effective clamped value), `descending=true`
//!   (only if the request had `descending=true`), `offset` (the id,
//!   percent-encoded like Go `url.QueryEscape`, so `==` → `%3D%3D`), then
//!   `prev=true` on the prev link. So `offset` is the last parameter of a next
//!   link, which is what the Workflows template's parser needs.
//! * Entries are `<url>; rel="prev"` first, then `<url>; rel="next"`,
//!   separated by `, `. No header at all when neither applies.
//! * `rel="next"` (offset = id of the page's last event) is emitted iff the page
//!   is non-empty and at least one event exists after its last event. For
//!   forward paging this is the rule "the page is full (`list.len() == count`)
//!   AND more events exist": **a full page that happens to end at the newest
//!   event has no next link**, exactly like a short last page. A consumer then
//!   re-polls from its last offset; new events appear there later.
//! * `rel="prev"` (offset = id of the page's first event, `prev=true`) is
//!   emitted iff the page is non-empty and an event exists before its first
//!   one; the first page therefore has none. An empty page has no links.
//!
//! ## Error body (unknown in the real API)
//!
//! Every error is `{"type": <ASA error name>, "code": <HTTP status>,
//! "message": <text>}` with `Content-Type: application/json`, e.g.
//! `{"type":"authentication_error","code":401,"message":"…"}`. Type names
//! follow asa-api.md §5 (`invalid_request` 400, `authentication_error` 401,
//! `resource_does_not_exist` 404, `too_many_requests` 429, `unknown_error`
//! 500, `service_offline` 503, `gateway_timeout` 504, …).
//!
//! ## Rate limit
//!
//! All API requests (token, audits, unknown paths) share one budget of
//! [`SimConfig::rate_limit_per_hour`] per hourly window
//! ([`SimConfig::rate_limit_window`]); windows start when the simulator
//! starts. Every response carries `X-RateLimit-Limit`,
//! `X-RateLimit-Remaining` and `X-RateLimit-Reset` (unix seconds of the
//! window end, rounded up: a client that waits until then finds the new
//! window). Over budget → `429 too_many_requests` with
//! `X-RateLimit-Retry-At` = the window end. `rate_limit_per_hour = 0`
//! disables the limit (headers report 4294967295).
//!
//! ## Synthetic data and id encoding (ids are opaque in the real API)
//!
//! Event `i` (0 = oldest) is a pure function of `(seed, team, start_time,
//! event_spacing, i)`; only the event count is stored.
//!
//! * **Id**: 16 bytes = `Feistel₄(i)` (a keyed 64-bit bijection, keys from the
//!   seed) ‖ a 64-bit keyed checksum of those 8 bytes; URL-safe base64 with
//!   `==` padding (24 chars, e.g. `72H8i_PqrupQhBdw8-qu6g==` in shape). Decoding
//!   the offset is O(1), needs no map, and rejects ids from another seed. Ids
//!   do **not** sort chronologically (the real ones probably do not either).
//!   Unpadded ids are accepted as offsets.
//! * **Timestamp**: `start_time + i·event_spacing + jitter(i)`, jitter in
//!   `[0, event_spacing)`, so strictly increasing; appended events continue
//!   the same schedule. RFC 3339 UTC with 9 fractional digits.
//! * **Details**: 15 event types chosen by a hash of `i` (weights favour
//!   `auth_token.issue`, `user_creds.issue`, `server.ssh_login`), keys per
//!   asa-api.md §3.1/§6/§7, sorted like Go maps. Realism a consumer must
//!   tolerate: `via: null`; `servers: [..]` arrays (sometimes empty) instead of
//!   `server`; about 1 in 64 references is `""`; `server.enroll` has
//!   `actor: ""`; service-user `auth_token.issue` has `client: ""`;
//!   `team_id` is always `""`. Invented values (not from any source):
//!   `session_type: "service_user"`, `user_status`, the `ssh_*` values.
//! * **Related objects**: fixed pools built from the seed — 40 users (8 are
//!   service users with `details: null`; one DISABLED human, one DELETED), 30
//!   clients, 25 servers (many null fields, e.g. `canonical_name: null`), 8
//!   projects, 10 groups, 4 gateways. Ref-ids are 44-char standard base64 of
//!   32 bytes derived from (seed, kind, index).
//!
//! ## Odd events
//!
//! [`SimConfig::odd_events`] puts [`OddEvent`]s at chosen indices: poison events (no `id`, a
//! numeric `id`, not an object) that a consumer must set aside, and valid events with
//! enrichment edge cases. [`Sim::stored_event_ids`] is what a consumer should store;
//! [`Sim::poison_events`] gives the others with the exact text served.
//!
//! ## Faults
//!
//! [`Sim::inject`] queues faults for auditsV2 requests (FIFO, each request
//! consumes at most one); [`Sim::inject_for`] can target the token endpoint.
//! The real rate limit is checked before the queue, so an over-budget request
//! does not consume a fault.
//!
//! ## Lifetime
//!
//! [`Sim`] is a cheap `Clone` handle. The server runs until [`Sim::shutdown`]
//! is called **or the last handle is dropped**. In-process tests that block
//! their thread (e.g. run a synchronous client) should either use a
//! multi-threaded runtime or [`Sim::start_in_thread`].

mod data;
mod faults;
mod odd;
mod server;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use faults::{Fault, FaultTarget};
pub use odd::{OddEvent, UNKNOWN_REF};

/// The event types the generator emits (`details.type`).
pub const EVENT_TYPES: [&str; 15] = data::EVENT_TYPES;

/// Maximum page size (larger `count` values are clamped).
pub const MAX_PAGE_SIZE: u64 = 1000;

/// How `Link` header URLs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkStyle {
    /// `http://127.0.0.1:PORT/v1/teams/{team}/auditsV2?...`
    #[default]
    Absolute,
    /// `/v1/teams/{team}/auditsV2?...`
    Relative,
}

/// Simulator settings. Use `..Default::default()` for the rest.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Team name in the URL path. Default `william-faulkner`.
    pub team: String,
    /// Service-user API key id. Default: the docs' placeholder UUID.
    pub key_id: String,
    /// Service-user API key secret (88-char base64). Default: the docs' placeholder.
    pub key_secret: String,
    /// Events existing at start. Default 1000.
    pub events: u64,
    /// Seed for ids, ref-ids and event contents. Default 0.
    pub seed: u64,
    /// Bearer-token lifetime. Default 1 h.
    pub token_ttl: Duration,
    /// Requests per hourly window before `429`. Default 10 000; 0 = unlimited.
    pub rate_limit_per_hour: u32,
    /// Length of a rate-limit window. Default 1 h (ASA's); tests may shorten it. Whole
    /// seconds, at least 1 (rounded up).
    pub rate_limit_window: Duration,
    /// Events appended per second by a background task; 0 = off (default).
    pub live_events_per_sec: f64,
    /// Absolute (default) or relative `Link` URLs.
    pub link_style: LinkStyle,
    /// Whether the team in the URL path must match [`SimConfig::team`] exactly, as on some
    /// deployments. Default `false` (case-insensitive, as app.scaleft.com answers).
    pub team_case_sensitive: bool,
    /// Timestamp of event 0 (before jitter). Default 2024-03-05T00:00:00Z
    /// (fixed, so that the same config yields the same events).
    pub start_time: jiff::Timestamp,
    /// Mean distance between consecutive event timestamps. Default 1 s.
    pub event_spacing: Duration,
    /// More teams served by the same server, as app.scaleft.com serves many: each has its own
    /// key pair, event stream (its own seed, so its own ids), tokens, rate-limit budget and
    /// fault queue; the other settings are this config's. Default none. See [`Sim::team_handle`].
    pub extra_teams: Vec<TeamConfig>,
    /// Odd events: `(index, what)`, e.g. poison events a consumer cannot store. An index may
    /// be beyond the events that exist yet (it applies once appended). Default none. They apply
    /// to the main team only.
    pub odd_events: Vec<(u64, OddEvent)>,
}

/// One more team of a [`Sim`] ([`SimConfig::extra_teams`]).
#[derive(Debug, Clone)]
pub struct TeamConfig {
    /// Team name in the URL path (matched like [`SimConfig::team`]).
    pub team: String,
    pub key_id: String,
    pub key_secret: String,
    /// Events existing at start.
    pub events: u64,
    /// Seed of this team's data: must differ from every other team's, so the ids differ.
    pub seed: u64,
}

/// The placeholder key id of the ASA docs.
pub const DEFAULT_KEY_ID: &str = "6052868b-1b04-4a14-8288-e6496d7f2f4b";
/// The placeholder key secret of the ASA docs (88 chars, standard base64 of 64 bytes).
pub const DEFAULT_KEY_SECRET: &str =
    "uF0SoVBVQP/hJmQSLUZdM2a7ArYzjD8ykzvG7n4tKaOEfSErcwMUUDWpEf4Q42/HaVKPZUfILkzy/bsQFv7WRg==";
/// Default team name.
pub const DEFAULT_TEAM: &str = "william-faulkner";
/// Default [`SimConfig::start_time`]: 2024-03-05T00:00:00Z.
pub const DEFAULT_START_UNIX: i64 = 1_709_596_800;

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            team: DEFAULT_TEAM.to_string(),
            key_id: DEFAULT_KEY_ID.to_string(),
            key_secret: DEFAULT_KEY_SECRET.to_string(),
            events: 1000,
            seed: 0,
            token_ttl: Duration::from_secs(3600),
            rate_limit_per_hour: 10_000,
            rate_limit_window: Duration::from_secs(3600),
            live_events_per_sec: 0.0,
            link_style: LinkStyle::Absolute,
            team_case_sensitive: false,
            start_time: jiff::Timestamp::from_second(DEFAULT_START_UNIX)
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
            event_spacing: Duration::from_secs(1),
            extra_teams: Vec::new(),
            odd_events: Vec::new(),
        }
    }
}

/// Request/response counters since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// `POST …/service_token` requests (any outcome).
    pub token_requests: u64,
    /// Bearer tokens actually issued.
    pub tokens_issued: u64,
    /// `GET …/auditsV2` requests (any outcome).
    pub audit_requests: u64,
    /// Requests to any other path.
    pub other_requests: u64,
    /// Injected faults consumed.
    pub faults_served: u64,
    /// Events returned in `list`s of successful pages (truncated pages included).
    pub events_served: u64,
    pub status_2xx: u64,
    pub status_401: u64,
    pub status_429: u64,
    pub status_5xx: u64,
    /// Any other status (400, 404, 405, …).
    pub status_other: u64,
}

struct Inner {
    shared: Arc<server::Shared>,
    addr: SocketAddr,
    /// Sending `true` (or dropping this) stops the server and the live task.
    stop: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
    server: Mutex<Option<JoinHandle<()>>>,
}

/// A running simulator. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("base_url", &self.base_url())
            .field("team", &self.team())
            .field("events", &self.event_count())
            .finish()
    }
}

impl Sim {
    /// Binds `127.0.0.1:0` and starts serving on the current tokio runtime.
    pub async fn start(cfg: SimConfig) -> anyhow::Result<Sim> {
        Sim::start_on(cfg, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Binds `addr` and starts serving on the current tokio runtime. If `addr`
    /// is a wildcard address, links and [`Sim::base_url`] use loopback.
    pub async fn start_on(cfg: SimConfig, addr: SocketAddr) -> anyhow::Result<Sim> {
        anyhow::ensure!(!cfg.team.is_empty(), "team must not be empty");
        anyhow::ensure!(
            cfg.live_events_per_sec.is_finite() && cfg.live_events_per_sec >= 0.0,
            "live_events_per_sec must be a finite number >= 0"
        );
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("asa-sim: cannot bind {addr}"))?;
        let local = listener.local_addr()?;
        let ip = match local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let base_url = format!("http://{}", SocketAddr::new(ip, local.port()));
        let spacing_ns = u64::try_from(cfg.event_spacing.as_nanos()).unwrap_or(u64::MAX);
        let shared_for = |t: &TeamConfig, odd: &[(u64, OddEvent)], others| {
            let mut data =
                data::Data::new(t.seed, &t.team, cfg.start_time.as_nanosecond(), spacing_ns);
            data.odd = odd.iter().copied().collect();
            Arc::new(server::Shared::new(server::SharedInit {
                data,
                team: t.team.clone(),
                key_id: t.key_id.clone(),
                key_secret: t.key_secret.clone(),
                token_ttl: cfg.token_ttl,
                rate_limit: cfg.rate_limit_per_hour,
                rate_window: cfg.rate_limit_window,
                link_style: cfg.link_style,
                team_case_sensitive: cfg.team_case_sensitive,
                base_url: base_url.clone(),
                events: t.events,
                others,
            }))
        };
        let main_team = TeamConfig {
            team: cfg.team.clone(),
            key_id: cfg.key_id.clone(),
            key_secret: cfg.key_secret.clone(),
            events: cfg.events,
            seed: cfg.seed,
        };
        let mut others = Vec::new();
        for t in &cfg.extra_teams {
            let seen = std::iter::once(&main_team).chain(&cfg.extra_teams[..others.len()]);
            for s in seen {
                anyhow::ensure!(
                    !t.team.is_empty() && !t.team.eq_ignore_ascii_case(&s.team),
                    "extra team {:?}: names must be non-empty and differ",
                    t.team
                );
                anyhow::ensure!(
                    t.seed != s.seed,
                    "extra team {:?}: its seed {} is also team {:?}'s (the ids would repeat)",
                    t.team,
                    t.seed,
                    s.team
                );
            }
            others.push(shared_for(t, &[], Vec::new()));
        }
        let shared = shared_for(&main_team, &cfg.odd_events, others);

        let (stop_tx, stop_rx) = watch::channel(false);
        let (stopped_tx, stopped_rx) = watch::channel(false);
        let app = server::router(shared.clone());
        let mut server_stop = stop_rx.clone();
        let server = tokio::spawn(async move {
            let res = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    // Err = every Sim handle dropped: stop as well.
                    let _ = server_stop.wait_for(|stop| *stop).await;
                })
                .await;
            if let Err(e) = res {
                tracing::warn!("asa-sim: server error: {e}");
            }
            let _ = stopped_tx.send(true);
        });
        if cfg.live_events_per_sec > 0.0 {
            tokio::spawn(live(shared.clone(), cfg.live_events_per_sec, stop_rx));
        }
        tracing::debug!(base_url = %shared.base_url, team = %cfg.team, events = cfg.events, "asa-sim started");
        Ok(Sim {
            inner: Arc::new(Inner {
                shared,
                addr: local,
                stop: stop_tx,
                stopped: stopped_rx,
                server: Mutex::new(Some(server)),
            }),
        })
    }

    /// Starts the simulator on a dedicated thread with its own tokio runtime,
    /// for callers that are synchronous or block their runtime's threads.
    /// Binds `127.0.0.1:0`.
    pub fn start_in_thread(cfg: SimConfig) -> anyhow::Result<Sim> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("asa-sim".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(anyhow::Error::from(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    match Sim::start(cfg).await {
                        Ok(sim) => {
                            let mut stopped = sim.inner.stopped.clone();
                            // Do not keep a handle here, or dropping the
                            // caller's handles could never stop the server.
                            if tx.send(Ok(sim)).is_ok() {
                                let _ = stopped.wait_for(|s| *s).await;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })
            .context("asa-sim: cannot spawn thread")?;
        rx.recv().context("asa-sim: server thread died")?
    }

    /// `http://127.0.0.1:PORT` (no trailing slash, no `/v1`).
    pub fn base_url(&self) -> String {
        self.inner.shared.base_url.clone()
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    pub fn team(&self) -> &str {
        &self.inner.shared.team
    }

    pub fn key_id(&self) -> &str {
        &self.inner.shared.key_id
    }

    pub fn key_secret(&self) -> &str {
        &self.inner.shared.key_secret
    }

    /// Number of events that currently exist.
    pub fn event_count(&self) -> u64 {
        self.inner.shared.count.load(Ordering::Acquire)
    }

    /// Every existing event id, oldest first, poison events included (their ids are the
    /// offsets paging uses; see [`Sim::stored_event_ids`]). (Allocates one `String` per
    /// event: fine for tests, avoid for millions of events.)
    pub fn event_ids(&self) -> Vec<String> {
        let n = self.event_count();
        let data = &self.inner.shared.data;
        (0..n).map(|i| data.id(i)).collect()
    }

    /// The ids a consumer should store, oldest first: every existing event but the poison
    /// ones ([`OddEvent::is_poison`]). The same as [`Sim::event_ids`] without odd events.
    pub fn stored_event_ids(&self) -> Vec<String> {
        let data = &self.inner.shared.data;
        (0..self.event_count())
            .filter(|i| !data.odd.get(i).is_some_and(|o| o.is_poison()))
            .map(|i| data.id(i))
            .collect()
    }

    /// The existing poison events, oldest first: their index and the exact JSON text served.
    pub fn poison_events(&self) -> Vec<(u64, String)> {
        let data = &self.inner.shared.data;
        data.odd
            .range(..self.event_count())
            .filter_map(|(&i, _)| Some((i, data.poison_text(i)?)))
            .collect()
    }

    /// Id of the event at `index` (0 = oldest), if it exists.
    pub fn event_id(&self, index: u64) -> Option<String> {
        (index < self.event_count()).then(|| self.inner.shared.data.id(index))
    }

    /// Index of an existing event id (0 = oldest).
    pub fn event_index(&self, id: &str) -> Option<u64> {
        self.inner
            .shared
            .data
            .index_of(id)
            .filter(|&i| i < self.event_count())
    }

    /// The full event object `{"id","timestamp","details"}`, if it exists (for a poison event,
    /// the event it was made from; [`Sim::poison_events`] has what is served).
    pub fn event(&self, id: &str) -> Option<serde_json::Value> {
        let i = self.event_index(id)?;
        Some(self.inner.shared.data.event_value(i))
    }

    /// The related object for a ref-id: `{"type": kind, "object": {...}}`.
    pub fn related_object(&self, ref_id: &str) -> Option<serde_json::Value> {
        self.inner
            .shared
            .data
            .related_by_ref(ref_id)
            .map(|o| o.entry.clone())
    }

    /// Every related object's ref-id with its kind, in pool order.
    pub fn related_ref_ids(&self) -> Vec<(String, &'static str)> {
        self.inner
            .shared
            .data
            .pools
            .objs
            .iter()
            .map(|o| (o.ref_id.clone(), o.kind))
            .collect()
    }

    /// The `n` oldest retained events age out (see the crate doc's "Retention"); never
    /// more than exist.
    pub fn expire_oldest(&self, n: u64) {
        let shared = &self.inner.shared;
        let count = shared.count.load(Ordering::Acquire);
        let _ = shared
            .expired
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |e| {
                Some(e.saturating_add(n).min(count))
            });
    }

    /// Every retained event id (not aged out), oldest first.
    pub fn retained_ids(&self) -> Vec<String> {
        let n = self.event_count();
        let data = &self.inner.shared.data;
        let oldest = self.inner.shared.expired.load(Ordering::Acquire).min(n);
        (oldest..n).map(|i| data.id(i)).collect()
    }

    /// `n` new events arrive (newest last).
    pub fn append_events(&self, n: u64) {
        self.inner.shared.count.fetch_add(n, Ordering::AcqRel);
    }

    /// One of the [`SimConfig::extra_teams`], by name (any case).
    pub fn team_handle(&self, team: &str) -> Option<SimTeam> {
        let others = &self.inner.shared.others;
        let shared = others.iter().find(|o| o.team.eq_ignore_ascii_case(team))?;
        Some(SimTeam {
            shared: shared.clone(),
        })
    }

    /// The next `times` auditsV2 requests get `fault` (FIFO after faults
    /// already queued).
    pub fn inject(&self, fault: Fault, times: u32) {
        self.inject_for(FaultTarget::Audits, fault, times);
    }

    /// Like [`Sim::inject`] for a chosen endpoint.
    pub fn inject_for(&self, target: FaultTarget, fault: Fault, times: u32) {
        self.inner.shared.faults.push(target, fault, times);
    }

    /// Faults still queued.
    pub fn pending_faults(&self) -> usize {
        self.inner.shared.faults.len()
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.inner.shared.faults.clear();
    }

    /// Every issued token becomes invalid (`401 authentication_error`).
    pub fn expire_tokens(&self) {
        self.inner.shared.expire_tokens();
    }

    /// Every bearer token issued so far (for tests that check a token is shown nowhere).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.inner.shared.issued_tokens()
    }

    pub fn stats(&self) -> Stats {
        self.inner.shared.counters.snapshot()
    }

    /// Stops the live task and the server (graceful, at most ~5 s; then the
    /// server task is aborted). Other clones of this handle become inert.
    pub async fn shutdown(self) {
        let _ = self.inner.stop.send(true);
        let mut stopped = self.inner.stopped.clone();
        let graceful = tokio::time::timeout(Duration::from_secs(5), stopped.wait_for(|s| *s)).await;
        if graceful.is_err() {
            let handle = self
                .inner
                .server
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(h) = handle {
                h.abort();
            }
        }
    }
}

/// One of a [`Sim`]'s extra teams ([`SimConfig::extra_teams`]): its data and counters.
#[derive(Clone)]
pub struct SimTeam {
    shared: Arc<server::Shared>,
}

impl SimTeam {
    pub fn team(&self) -> &str {
        &self.shared.team
    }

    pub fn key_id(&self) -> &str {
        &self.shared.key_id
    }

    pub fn key_secret(&self) -> &str {
        &self.shared.key_secret
    }

    /// Number of this team's events.
    pub fn event_count(&self) -> u64 {
        self.shared.count.load(Ordering::Acquire)
    }

    /// Every event id of this team, oldest first.
    pub fn event_ids(&self) -> Vec<String> {
        (0..self.event_count())
            .map(|i| self.shared.data.id(i))
            .collect()
    }

    /// The full event object of this team, if it exists.
    pub fn event(&self, id: &str) -> Option<serde_json::Value> {
        let i = self
            .shared
            .data
            .index_of(id)
            .filter(|&i| i < self.event_count())?;
        Some(self.shared.data.event_value(i))
    }

    /// `n` new events of this team arrive (newest last).
    pub fn append_events(&self, n: u64) {
        self.shared.count.fetch_add(n, Ordering::AcqRel);
    }

    /// This team's request counters.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }
}

/// Appends events at `rate` per second until told to stop.
async fn live(shared: Arc<server::Shared>, rate: f64, mut stop: watch::Receiver<bool>) {
    let start = Instant::now();
    let mut appended = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
        }
        let due = (start.elapsed().as_secs_f64() * rate).floor() as u64;
        if due > appended {
            shared.count.fetch_add(due - appended, Ordering::AcqRel);
            appended = due;
        }
    }
}
