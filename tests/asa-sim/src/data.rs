//! Deterministic synthetic data: event ids, timestamps, event `details`, and the
//! related-object pools.
//!
//! Nothing here is stored per event. Event `i` is a pure function of
//! `(seed, team, start_time, event_spacing, i)`; the only per-event state the
//! simulator keeps is the event *count*. Related objects come from small fixed
//! pools built once at start-up.

use std::collections::{BTreeMap, HashMap};

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD, URL_SAFE};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{json, Value};

use crate::odd::OddEvent;

// ---------------------------------------------------------------------------
// Hashing helpers
// ---------------------------------------------------------------------------

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 finaliser: a bijective 64-bit mixer.
#[inline]
pub(crate) fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Tiny deterministic generator (SplitMix64 stream).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }
    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix64(self.0)
    }
    /// Uniform in `0..n` (n > 0; returns 0 for n == 0).
    #[inline]
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
    /// True with probability `1/n`.
    #[inline]
    pub(crate) fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Per-seed keys, each derived from the seed with a distinct domain constant.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    feistel: [u64; 4],
    check: u64,
    event: u64,
    jitter: u64,
    refs: u64,
    objects: u64,
    pub(crate) token: u64,
}

impl Keys {
    pub(crate) fn new(seed: u64) -> Self {
        let k = |domain: u64| mix64(mix64(seed ^ domain).wrapping_add(domain));
        Keys {
            feistel: [
                k(0x6665_6973_7465_6c31),
                k(0x6665_6973_7465_6c32),
                k(0x6665_6973_7465_6c33),
                k(0x6665_6973_7465_6c34),
            ],
            check: k(0x6368_6563_6b73_756d),
            event: k(0x6576_656e_7473_2121),
            jitter: k(0x6a69_7474_6572_2121),
            refs: k(0x7265_662d_6964_7321),
            objects: k(0x6f62_6a65_6374_7321),
            token: k(0x746f_6b65_6e73_2121),
        }
    }
}

// ---------------------------------------------------------------------------
// Event ids: 16 bytes = Feistel(index) ‖ keyed checksum, URL-safe base64 (24 chars)
// ---------------------------------------------------------------------------

#[inline]
fn feistel_round(r: u32, key: u64) -> u32 {
    (mix64(u64::from(r) ^ key) >> 32) as u32
}

fn feistel(x: u64, keys: &[u64; 4]) -> u64 {
    let (mut l, mut r) = ((x >> 32) as u32, x as u32);
    for &k in keys {
        let f = feistel_round(r, k);
        (l, r) = (r, l ^ f);
    }
    (u64::from(l) << 32) | u64::from(r)
}

fn feistel_inv(y: u64, keys: &[u64; 4]) -> u64 {
    let (mut l, mut r) = ((y >> 32) as u32, y as u32);
    for &k in keys.iter().rev() {
        (l, r) = (r ^ feistel_round(l, k), l);
    }
    (u64::from(l) << 32) | u64::from(r)
}

const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub(crate) fn id_bytes(keys: &Keys, index: u64) -> [u8; 16] {
    let enc = feistel(index, &keys.feistel);
    let check = mix64(enc ^ keys.check);
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&enc.to_be_bytes());
    b[8..].copy_from_slice(&check.to_be_bytes());
    b
}

/// The event id of index `i`: 24 chars, URL-safe alphabet, `==` padding.
pub(crate) fn encode_id(keys: &Keys, index: u64) -> String {
    URL_SAFE.encode(id_bytes(keys, index))
}

/// Inverse of [`encode_id`]; `None` for anything this seed did not mint.
/// Accepts the id with or without `=` padding.
pub(crate) fn decode_id(keys: &Keys, s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 24 {
        return None;
    }
    let mut buf = [0u8; 24];
    let n = URL_SAFE_LENIENT.decode_slice(s.as_bytes(), &mut buf).ok()?;
    if n != 16 {
        return None;
    }
    let mut enc = [0u8; 8];
    let mut check = [0u8; 8];
    enc.copy_from_slice(&buf[..8]);
    check.copy_from_slice(&buf[8..16]);
    let enc = u64::from_be_bytes(enc);
    if mix64(enc ^ keys.check) != u64::from_be_bytes(check) {
        return None;
    }
    Some(feistel_inv(enc, &keys.feistel))
}

// ---------------------------------------------------------------------------
// Time formatting (RFC 3339 UTC, 9 fractional digits), no allocation per call
// beyond the output string.
// ---------------------------------------------------------------------------

/// Days since 1970-01-01 → (year, month, day). Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i64 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn push_num(out: &mut String, v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let digits = buf.len() - i;
    for _ in digits..width {
        out.push('0');
    }
    for &b in &buf[i..] {
        out.push(b as char);
    }
}

/// Appends `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` for `ns` nanoseconds since the Unix epoch.
pub(crate) fn push_rfc3339_nanos(out: &mut String, ns: i128) {
    let secs = ns.div_euclid(1_000_000_000) as i64;
    let frac = ns.rem_euclid(1_000_000_000) as u64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u64;
    let (y, m, d) = civil_from_days(days);
    if y < 0 {
        out.push('-');
    }
    push_num(out, y.unsigned_abs(), 4);
    out.push('-');
    push_num(out, u64::from(m), 2);
    out.push('-');
    push_num(out, u64::from(d), 2);
    out.push('T');
    push_num(out, sod / 3600, 2);
    out.push(':');
    push_num(out, (sod / 60) % 60, 2);
    out.push(':');
    push_num(out, sod % 60, 2);
    out.push('.');
    push_num(out, frac, 9);
    out.push('Z');
}

pub(crate) fn rfc3339_nanos(ns: i128) -> String {
    let mut s = String::with_capacity(30);
    push_rfc3339_nanos(&mut s, ns);
    s
}

// ---------------------------------------------------------------------------
// Related-object pools
// ---------------------------------------------------------------------------

pub(crate) const N_USERS: usize = 40;
pub(crate) const N_HUMANS: usize = 32;
pub(crate) const N_CLIENTS: usize = 30;
pub(crate) const N_SERVERS: usize = 25;
pub(crate) const N_PROJECTS: usize = 8;
pub(crate) const N_GROUPS: usize = 10;
pub(crate) const N_GATEWAYS: usize = 4;

const USER0: usize = 0;
const CLIENT0: usize = USER0 + N_USERS;
const SERVER0: usize = CLIENT0 + N_CLIENTS;
const PROJECT0: usize = SERVER0 + N_SERVERS;
const GROUP0: usize = PROJECT0 + N_PROJECTS;
const GATEWAY0: usize = GROUP0 + N_GROUPS;
pub(crate) const N_OBJECTS: usize = GATEWAY0 + N_GATEWAYS;

const HUMANS: [(&str, &str); N_HUMANS] = [
    ("Jason", "Compson"),
    ("Quentin", "Compson"),
    ("Candace", "Compson"),
    ("Benjamin", "Compson"),
    ("Caroline", "Compson"),
    ("Dilsey", "Gibson"),
    ("Addie", "Bundren"),
    ("Anse", "Bundren"),
    ("Darl", "Bundren"),
    ("Cash", "Bundren"),
    ("Jewel", "Bundren"),
    ("Vardaman", "Bundren"),
    ("Lena", "Grove"),
    ("Joe", "Christmas"),
    ("Gail", "Hightower"),
    ("Byron", "Bunch"),
    ("Joanna", "Burden"),
    ("Thomas", "Sutpen"),
    ("Henry", "Sutpen"),
    ("Judith", "Sutpen"),
    ("Charles", "Bon"),
    ("Rosa", "Coldfield"),
    ("Flem", "Snopes"),
    ("Eula", "Varner"),
    ("Will", "Varner"),
    ("Ike", "McCaslin"),
    ("Lucas", "Beauchamp"),
    ("Gavin", "Stevens"),
    ("Bayard", "Sartoris"),
    ("Narcissa", "Benbow"),
    ("Temple", "Drake"),
    ("Horace", "Benbow"),
];

const SERVICE_USERS: [&str; N_USERS - N_HUMANS] = [
    "shreve",
    "spoade",
    "gerald.bland",
    "dalton.ames",
    "herbert.head",
    "popeye",
    "red",
    "lump.snopes",
];

const PLACES: [&str; 12] = [
    "harvard",
    "jefferson",
    "frenchmans-bend",
    "memphis",
    "oxford",
    "mottstown",
    "sutpens-hundred",
    "old-frenchman-place",
    "varners-store",
    "sartoris-bank",
    "compson-mile",
    "yoknapatawpha",
];

const CLIENT_HOSTS: [&str; 10] = [
    "Absalom",
    "LightInAugust",
    "Sanctuary",
    "Pylon",
    "Mosquitoes",
    "TheHamlet",
    "TheTown",
    "TheMansion",
    "Sartoris",
    "Requiem",
];

const PROJECTS: [&str; N_PROJECTS] = [
    "the-sound-and-the-fury",
    "as-i-lay-dying",
    "light-in-august",
    "absalom-absalom",
    "go-down-moses",
    "sanctuary",
    "the-hamlet",
    "the-reivers",
];

const GROUPS: [(&str, &[&str]); N_GROUPS] = [
    ("everyone", &["access_user"]),
    ("owners", &["access_admin", "access_user"]),
    (
        "compsons",
        &["access_user", "reporting_user", "access_admin"],
    ),
    ("bundrens", &["access_user"]),
    ("sutpens", &["access_user"]),
    ("snopeses", &["access_user"]),
    ("mccaslins", &["access_user"]),
    ("sartorises", &["access_user"]),
    ("auditors", &["reporting_user"]),
    ("sre", &["access_admin", "access_user"]),
];

const GATEWAYS: [&str; N_GATEWAYS] = [
    "gw-jefferson",
    "gw-frenchmans-bend",
    "gw-memphis",
    "gw-oxford",
];

/// One related object: its ref-id, kind, object JSON and the pre-serialised
/// `{"object":...,"type":...}` entry used when writing pages.
pub(crate) struct RelObj {
    pub(crate) ref_id: String,
    pub(crate) kind: &'static str,
    pub(crate) entry: Value,
    pub(crate) entry_json: Vec<u8>,
}

pub(crate) struct Pools {
    pub(crate) objs: Vec<RelObj>,
    /// Object indices sorted by ref-id (Go's encoding/json writes map keys sorted).
    sorted: Vec<u16>,
    by_ref: HashMap<String, u16>,
    user_unix: Vec<String>,
    client_owner: Vec<u16>,
    client_host: Vec<&'static str>,
    server_project: Vec<u16>,
    server_host: Vec<String>,
    project_servers: Vec<Vec<u16>>,
}

fn uuid_from(a: u64, b: u64) -> String {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

impl Pools {
    fn build(keys: &Keys, team: &str, start_ns: i128) -> Pools {
        let mut rng = Rng::new(keys.objects);
        let uuid = |rng: &mut Rng| {
            let a = rng.next_u64();
            let b = rng.next_u64();
            uuid_from(a, b)
        };
        let ts =
            |offset_secs: i64| rfc3339_nanos(start_ns + i128::from(offset_secs) * 1_000_000_000);
        let zero_time = "0001-01-01T00:00:00Z";
        let mut objs: Vec<(&'static str, Value)> = Vec::with_capacity(N_OBJECTS);

        // Users.
        let mut user_unix = Vec::with_capacity(N_USERS);
        for (i, (first, last)) in HUMANS.iter().enumerate() {
            let name = format!("{first}.{last}");
            let (status, deleted_at) = match i {
                4 => ("DISABLED", Value::Null),
                21 => ("DELETED", Value::String(ts(-86_400 * 30))),
                _ => ("ACTIVE", Value::Null),
            };
            user_unix.push(name.to_ascii_lowercase().replace('.', "_"));
            objs.push((
                "user",
                json!({
                    "deleted_at": deleted_at,
                    "details": {
                        "email": format!("{}@example.com", name.to_ascii_lowercase()),
                        "first_name": first,
                        "full_name": format!("{first} {last}"),
                        "last_name": last,
                    },
                    "id": uuid(&mut rng),
                    "name": name,
                    "oauth_client_application_id": null,
                    "role_grants": null,
                    "status": status,
                    "team_name": "",
                    "user_type": "human",
                }),
            ));
        }
        for name in SERVICE_USERS {
            let status = if name == "popeye" {
                "DISABLED"
            } else {
                "ACTIVE"
            };
            user_unix.push(name.replace('.', "_"));
            objs.push((
                "user",
                json!({
                    "deleted_at": null,
                    "details": null,
                    "id": uuid(&mut rng),
                    "name": name,
                    "oauth_client_application_id": null,
                    "role_grants": null,
                    "status": status,
                    "team_name": "",
                    "user_type": "service",
                }),
            ));
        }

        // Clients: client j belongs to human (7j mod 32) — distinct owners.
        let mut client_owner = Vec::with_capacity(N_CLIENTS);
        let mut client_host = Vec::with_capacity(N_CLIENTS);
        let oses = [
            "macOS 10.14.6",
            "macOS 14.3.1",
            "Windows 11",
            "Ubuntu 22.04",
        ];
        let descs = ["Personal laptop", "Work laptop", "Desktop", "Build box", ""];
        for j in 0..N_CLIENTS {
            let owner = (j * 7) % N_HUMANS;
            let host = CLIENT_HOSTS[j % CLIENT_HOSTS.len()];
            client_owner.push(owner as u16);
            client_host.push(host);
            let state = match j % 11 {
                3 => "PENDING",
                7 => "INACTIVE",
                _ => "ACTIVE",
            };
            let (first, last) = HUMANS[owner];
            objs.push((
                "client",
                json!({
                    "deleted_at": null,
                    "description": descs[j % descs.len()],
                    "encrypted": j % 6 != 5,
                    "hostname": host,
                    "id": uuid(&mut rng),
                    "os": oses[j % oses.len()],
                    "state": state,
                    "user_name": format!("{first}.{last}"),
                }),
            ));
        }

        // Servers: server k is in project (k mod 8).
        let mut server_project = Vec::with_capacity(N_SERVERS);
        let mut server_host = Vec::with_capacity(N_SERVERS);
        let mut project_servers = vec![Vec::new(); N_PROJECTS];
        for k in 0..N_SERVERS {
            let p = k % N_PROJECTS;
            server_project.push(p as u16);
            project_servers[p].push(k as u16);
            let host = if k < PLACES.len() {
                PLACES[k].to_string()
            } else {
                format!("{}-{:02}", PLACES[k % PLACES.len()], k / PLACES.len())
            };
            server_host.push(host.clone());
            let windows = k % 9 == 8;
            let cloud = match k % 5 {
                1 => Value::from("aws"),
                3 => Value::from("gce"),
                _ => Value::Null,
            };
            let instance_details = match k % 5 {
                1 => json!({
                    "account_id": format!("{:012}", rng.below(1_000_000_000_000)),
                    "instance_id": format!("i-{:017x}", rng.next_u64() >> 0x0c),
                    "region": "us-east-1",
                    "availability_zone": "us-east-1a",
                }),
                3 => json!({
                    "instance_id": format!("{}", rng.next_u64() >> 1),
                    "project_id": "yoknapatawpha-prod",
                    "zone": "us-central1-b",
                }),
                _ => Value::Null,
            };
            let state = if k % 7 == 6 { "INACTIVE" } else { "ACTIVE" };
            objs.push((
                "server",
                json!({
                    "access_address": if k % 3 == 0 { Value::Null } else { Value::String(format!("10.{}.{}.{}", k % 4, k * 3 % 250, 10 + k)) },
                    "alt_names": if k % 4 == 0 { json!([]) } else { Value::Null },
                    "bastion": if k % 10 == 9 { Value::from("bastion.example.com") } else { Value::Null },
                    "canonical_name": if k % 6 == 2 { Value::String(format!("{host}.example.com")) } else { Value::Null },
                    "cloud_provider": cloud,
                    "deleted_at": zero_time,
                    "hostname": host,
                    "id": uuid(&mut rng),
                    "instance_details": instance_details,
                    "labels": if k % 4 == 1 { json!({"env": "prod", "tier": "web"}) } else { Value::Null },
                    "last_seen": ts(-(60 * (k as i64 + 1))),
                    "managed": k % 8 != 7,
                    "os": if windows { "Windows Server 2019" } else if k % 2 == 0 { "Ubuntu 16.04" } else { "Amazon Linux 2" },
                    "os_type": if windows { "windows" } else { "linux" },
                    "project_name": PROJECTS[p],
                    "registered_at": ts(-86_400 * (400 - k as i64)),
                    "services": if windows { json!(["rdp"]) } else { json!(["ssh"]) },
                    "sftd_version": if k % 2 == 0 { "1.44.4" } else { "1.80.1" },
                    "ssh_host_keys": null,
                    "state": state,
                    "team_name": team,
                }),
            ));
        }

        // Projects.
        for (p, name) in PROJECTS.iter().enumerate() {
            objs.push((
                "project",
                json!({
                    "create_server_users": p % 4 != 3,
                    "deleted_at": zero_time,
                    "force_shared_ssh_users": p % 5 == 4,
                    "id": uuid(&mut rng),
                    "name": name,
                    "next_unix_gid": 63_001 + p as u64 * 10,
                    "next_unix_uid": 60_001 + p as u64 * 100,
                    "require_preauth_for_creds": p % 2 == 0,
                    "shared_admin_user_name": if p % 5 == 4 { Value::from("sft_admin") } else { Value::Null },
                    "shared_standard_user_name": if p % 5 == 4 { Value::from("sft_user") } else { Value::Null },
                    "team": team,
                    "user_on_demand_period": null,
                }),
            ));
        }

        // Groups.
        for (g, (name, roles)) in GROUPS.iter().enumerate() {
            objs.push((
                "group",
                json!({
                    "deleted_at": if g % 3 == 0 { Value::Null } else { Value::from(zero_time) },
                    "federated_from_team": null,
                    "federation_approved_at": null,
                    "id": uuid(&mut rng),
                    "name": name,
                    "roles": roles,
                }),
            ));
        }

        // Gateways (field order as in the pam-sdk struct).
        for (g, name) in GATEWAYS.iter().enumerate() {
            objs.push((
                "gateway",
                json!({
                    "id": uuid(&mut rng),
                    "name": name,
                    "access_address": format!("gw{}.example.com", g + 1),
                    "default_address": format!("10.0.{g}.5"),
                    "description": if g == 0 { "" } else { "Yoknapatawpha gateway" },
                    "cloud_provider": if g % 2 == 1 { "aws" } else { "" },
                    "refuse_connections": g == 3,
                    "labels": if g == 2 { json!({"region": "us-east"}) } else { json!({}) },
                }),
            ));
        }

        debug_assert_eq!(objs.len(), N_OBJECTS);
        let objs: Vec<RelObj> = objs
            .into_iter()
            .enumerate()
            .map(|(idx, (kind, object))| {
                let ref_id = ref_id(keys, kind, idx as u64);
                let entry = json!({"object": object, "type": kind});
                let entry_json = serde_json::to_vec(&entry).unwrap_or_default();
                RelObj {
                    ref_id,
                    kind,
                    entry,
                    entry_json,
                }
            })
            .collect();
        let mut sorted: Vec<u16> = (0..objs.len() as u16).collect();
        sorted.sort_by(|a, b| objs[*a as usize].ref_id.cmp(&objs[*b as usize].ref_id));
        let by_ref = objs
            .iter()
            .enumerate()
            .map(|(i, o)| (o.ref_id.clone(), i as u16))
            .collect();
        Pools {
            objs,
            sorted,
            by_ref,
            user_unix,
            client_owner,
            client_host,
            server_project,
            server_host,
            project_servers,
        }
    }
}

/// 44-char standard base64 of 32 bytes derived from (seed, kind, index).
fn ref_id(keys: &Keys, kind: &str, idx: u64) -> String {
    let kind_tag = kind.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let base = mix64(keys.refs ^ kind_tag) ^ mix64(idx.wrapping_mul(GOLDEN) ^ keys.refs);
    let mut bytes = [0u8; 32];
    for (j, chunk) in bytes.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&mix64(base.wrapping_add(j as u64)).to_be_bytes());
    }
    STANDARD.encode(bytes)
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

/// A value inside `details`.
pub(crate) enum Val {
    Static(&'static str),
    Owned(String),
    /// The configured team name.
    Team,
    /// A reference to related object `n` (global pool index).
    Ref(u16),
    /// An array of references.
    Refs(Vec<u16>),
    Null,
}

pub(crate) struct Event {
    pub(crate) index: u64,
    /// Sorted by key (Go's encoding/json sorts map keys).
    pub(crate) details: Vec<(&'static str, Val)>,
}

impl Event {
    pub(crate) fn mark_refs(&self, used: &mut [u64]) {
        let mut mark = |r: u16| used[usize::from(r) / 64] |= 1u64 << (r % 64);
        for (_, v) in &self.details {
            match v {
                Val::Ref(r) => mark(*r),
                Val::Refs(rs) => rs.iter().copied().for_each(&mut mark),
                _ => {}
            }
        }
    }
}

/// Event types and their weights (out of 100).
const TYPES: [(&str, u64); 15] = [
    ("auth_token.issue", 22),
    ("user_creds.issue", 18),
    ("server.ssh_login", 18),
    ("gateway_creds.issue", 6),
    ("member.add", 4),
    ("member.remove", 3),
    ("project.add_group", 3),
    ("project.remove_group", 2),
    ("user.create", 3),
    ("user.update", 4),
    ("group.create", 2),
    ("client.enroll", 5),
    ("server.enroll", 4),
    ("apikey.rotate", 3),
    ("team_settings.update", 3),
];

pub(crate) const EVENT_TYPES: [&str; 15] = {
    let mut out = [""; 15];
    let mut i = 0;
    while i < 15 {
        out[i] = TYPES[i].0;
        i += 1;
    }
    out
};

const SSH_ALGOS: [&str; 4] = [
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ssh-ed25519-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
];

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The immutable part of a simulator: keys, time base, pools.
pub(crate) struct Data {
    pub(crate) keys: Keys,
    pub(crate) team: String,
    start_ns: i128,
    spacing_ns: u64,
    pub(crate) pools: Pools,
    /// Odd events by index ([`crate::SimConfig::odd_events`]).
    pub(crate) odd: BTreeMap<u64, OddEvent>,
}

impl Data {
    pub(crate) fn new(seed: u64, team: &str, start_ns: i128, spacing_ns: u64) -> Data {
        let keys = Keys::new(seed);
        let pools = Pools::build(&keys, team, start_ns);
        Data {
            keys,
            team: team.to_string(),
            start_ns,
            spacing_ns: spacing_ns.max(1),
            pools,
            odd: BTreeMap::new(),
        }
    }

    pub(crate) fn id(&self, index: u64) -> String {
        encode_id(&self.keys, index)
    }

    pub(crate) fn index_of(&self, id: &str) -> Option<u64> {
        decode_id(&self.keys, id)
    }

    /// Nanoseconds since the epoch of event `i`: `start + i*spacing + jitter`,
    /// jitter in `[0, spacing)`, hence strictly increasing in `i`.
    pub(crate) fn timestamp_ns(&self, i: u64) -> i128 {
        let jitter = mix64(i ^ self.keys.jitter) % self.spacing_ns;
        self.start_ns + i128::from(i) * i128::from(self.spacing_ns) + i128::from(jitter)
    }

    pub(crate) fn related_by_ref(&self, ref_id: &str) -> Option<&RelObj> {
        self.pools
            .by_ref
            .get(ref_id)
            .map(|&i| &self.pools.objs[usize::from(i)])
    }

    /// Derives event `i`.
    pub(crate) fn event(&self, i: u64) -> Event {
        let p = &self.pools;
        let mut rng = Rng::new(mix64(self.keys.event ^ i.wrapping_mul(GOLDEN)));
        let roll = rng.below(100);
        let mut acc = 0;
        let mut ty = TYPES[0].0;
        for (name, w) in TYPES {
            acc += w;
            if roll < acc {
                ty = name;
                break;
            }
        }
        let mut d: Vec<(&'static str, Val)> = Vec::with_capacity(12);
        let mut trace = String::with_capacity(8);
        for _ in 0..8 {
            trace.push(ALNUM[rng.below(ALNUM.len() as u64) as usize] as char);
        }
        d.push(("team_id", Val::Static("")));
        d.push(("team_name", Val::Team));
        d.push(("trace_id", Val::Owned(trace)));
        d.push(("type", Val::Static(ty)));

        // Occasionally a reference is an empty string (seen in real data).
        let maybe = |v: Val, rng: &mut Rng| if rng.one_in(64) { Val::Static("") } else { v };
        let user = |u: usize| Val::Ref((USER0 + u) as u16);
        let client = |c: usize| Val::Ref((CLIENT0 + c) as u16);
        let server = |s: usize| Val::Ref((SERVER0 + s) as u16);
        let project = |pr: usize| Val::Ref((PROJECT0 + pr) as u16);
        let group = |g: usize| Val::Ref((GROUP0 + g) as u16);
        let gateway = |g: usize| Val::Ref((GATEWAY0 + g) as u16);
        let human = |rng: &mut Rng| rng.below(N_HUMANS as u64) as usize;
        let admin = |rng: &mut Rng| rng.below(6) as usize;
        let service = |rng: &mut Rng| N_HUMANS + rng.below((N_USERS - N_HUMANS) as u64) as usize;
        let from_address = |rng: &mut Rng| -> Val {
            let host = 1 + rng.below(254);
            Val::Owned(match rng.below(8) {
                0 => format!("2001:db8::{:x}", rng.next_u64() as u16),
                1 | 2 => format!("198.51.100.{host}"),
                3 => format!("192.0.2.{host}"),
                _ => format!("203.0.113.{host}"),
            })
        };
        let project_servers = |rng: &mut Rng, pr: usize, max: u64| -> Vec<u16> {
            let list = &p.project_servers[pr];
            let n = 1 + rng.below(max.min(list.len() as u64));
            let start = rng.below(list.len() as u64) as usize;
            (0..n as usize)
                .map(|k| (SERVER0 as u16) + list[(start + k) % list.len()])
                .collect()
        };

        match ty {
            "auth_token.issue" => {
                if rng.one_in(8) {
                    // A service user authenticating with an API key: no client.
                    d.push(("actor", user(service(&mut rng))));
                    d.push(("client", Val::Static("")));
                    d.push(("session_type", Val::Static("service_user")));
                } else {
                    let c = rng.below(N_CLIENTS as u64) as usize;
                    d.push((
                        "actor",
                        maybe(user(usize::from(p.client_owner[c])), &mut rng),
                    ));
                    d.push(("client", client(c)));
                    d.push(("session_type", Val::Static("authenticated_client")));
                }
                d.push(("target_server", Val::Static("")));
                d.push(("via", Val::Null));
            }
            "user_creds.issue" | "gateway_creds.issue" => {
                let c = rng.below(N_CLIENTS as u64) as usize;
                let s = rng.below(N_SERVERS as u64) as usize;
                let pr = usize::from(p.server_project[s]);
                d.push(("actor", user(usize::from(p.client_owner[c]))));
                d.push(("client", maybe(client(c), &mut rng)));
                if ty == "user_creds.issue" {
                    d.push(("project", project(pr)));
                    let servers = if rng.one_in(40) {
                        Vec::new()
                    } else {
                        project_servers(&mut rng, pr, 3)
                    };
                    d.push(("servers", Val::Refs(servers)));
                } else {
                    d.push(("gateway", gateway(rng.below(N_GATEWAYS as u64) as usize)));
                    d.push(("servers", Val::Refs(project_servers(&mut rng, pr, 1))));
                }
            }
            "server.ssh_login" => {
                let s = rng.below(N_SERVERS as u64) as usize;
                let u = if rng.one_in(10) {
                    service(&mut rng)
                } else {
                    human(&mut rng)
                };
                let mut key = [0u8; 32];
                for chunk in key.chunks_exact_mut(8) {
                    chunk.copy_from_slice(&rng.next_u64().to_be_bytes());
                }
                let mut fp = String::with_capacity(51);
                fp.push_str("SHA256:");
                base64::engine::general_purpose::STANDARD_NO_PAD.encode_string(key, &mut fp);
                d.push(("from_address", from_address(&mut rng)));
                d.push(("project", project(usize::from(p.server_project[s]))));
                d.push(("server", server(s)));
                d.push(("ssh_algorithm", Val::Static(rng.pick(&SSH_ALGOS))));
                d.push(("ssh_public_key", Val::Owned(fp)));
                d.push(("unix_user_name", Val::Owned(p.user_unix[u].clone())));
                d.push(("user", user(u)));
            }
            "member.add" | "member.remove" => {
                d.push(("actor", user(admin(&mut rng))));
                d.push(("group", group(rng.below(N_GROUPS as u64) as usize)));
                d.push(("target_user", maybe(user(human(&mut rng)), &mut rng)));
            }
            "project.add_group" | "project.remove_group" => {
                d.push(("actor", user(admin(&mut rng))));
                d.push(("group", group(rng.below(N_GROUPS as u64) as usize)));
                d.push(("project", project(rng.below(N_PROJECTS as u64) as usize)));
            }
            "user.create" => {
                d.push(("actor", user(admin(&mut rng))));
                d.push(("target_user", user(rng.below(N_USERS as u64) as usize)));
            }
            "user.update" => {
                d.push(("actor", maybe(user(admin(&mut rng)), &mut rng)));
                d.push(("target_user", user(rng.below(N_USERS as u64) as usize)));
                d.push((
                    "user_status",
                    Val::Static(if rng.one_in(4) { "DISABLED" } else { "ACTIVE" }),
                ));
            }
            "group.create" => {
                d.push(("actor", user(admin(&mut rng))));
                d.push(("group", group(rng.below(N_GROUPS as u64) as usize)));
            }
            "client.enroll" => {
                let c = rng.below(N_CLIENTS as u64) as usize;
                d.push(("actor", user(usize::from(p.client_owner[c]))));
                d.push(("client", client(c)));
                d.push(("from_address", from_address(&mut rng)));
                d.push(("hostname", Val::Static(p.client_host[c])));
            }
            "server.enroll" => {
                let s = rng.below(N_SERVERS as u64) as usize;
                // Enrolment uses a project token: no acting user.
                d.push(("actor", Val::Static("")));
                d.push(("hostname", Val::Owned(p.server_host[s].clone())));
                d.push(("project", project(usize::from(p.server_project[s]))));
                d.push(("server", server(s)));
            }
            "apikey.rotate" => {
                let actor = if rng.one_in(3) {
                    service(&mut rng)
                } else {
                    admin(&mut rng)
                };
                d.push(("actor", user(actor)));
                d.push(("target_user", user(service(&mut rng))));
            }
            _ => {
                // team_settings.update
                d.push(("actor", user(admin(&mut rng))));
            }
        }
        match self.odd.get(&i) {
            Some(OddEvent::UnknownTargetUser) => {
                d.retain(|(k, _)| !matches!(*k, "target_user" | "user"));
                d.push(("target_user", Val::Static(crate::odd::UNKNOWN_REF)));
                d.push(("user", user(0)));
            }
            Some(OddEvent::RepeatedServer) => {
                d.retain(|(k, _)| !matches!(*k, "server" | "servers"));
                let (a, b) = (SERVER0 as u16, SERVER0 as u16 + 1);
                d.push(("servers", Val::Refs(vec![a, b, a])));
            }
            _ => {}
        }
        d.sort_unstable_by_key(|(k, _)| *k);
        Event {
            index: i,
            details: d,
        }
    }

    /// The text served for event `i` when it is a poison event ([`OddEvent::is_poison`]).
    pub(crate) fn poison_text(&self, i: u64) -> Option<String> {
        let odd = self.odd.get(&i)?;
        odd.poison_text(i, self.event_value(i))
    }

    /// The full event object as JSON.
    pub(crate) fn event_value(&self, i: u64) -> Value {
        let ev = self.event(i);
        serde_json::to_value(EventJson {
            data: self,
            ev: &ev,
        })
        .unwrap_or(Value::Null)
    }

    /// Writes `{"list":[...],"related_objects":{...}}` for the given indices
    /// (in display order). Returns the number of events written.
    pub(crate) fn write_page(
        &self,
        indices: impl Iterator<Item = u64>,
        out: &mut Vec<u8>,
    ) -> serde_json::Result<u64> {
        let mut used = [0u64; N_OBJECTS.div_ceil(64)];
        out.extend_from_slice(b"{\"list\":[");
        let mut n = 0u64;
        for i in indices {
            if n > 0 {
                out.push(b',');
            }
            if let Some(text) = self.poison_text(i) {
                out.extend_from_slice(text.as_bytes());
                n += 1;
                continue;
            }
            let ev = self.event(i);
            ev.mark_refs(&mut used);
            serde_json::to_writer(
                &mut *out,
                &EventJson {
                    data: self,
                    ev: &ev,
                },
            )?;
            n += 1;
        }
        out.extend_from_slice(b"],\"related_objects\":{");
        let mut first = true;
        for &k in &self.pools.sorted {
            if used[usize::from(k) / 64] & (1u64 << (k % 64)) == 0 {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            let obj = &self.pools.objs[usize::from(k)];
            // Ref-ids are standard base64: no JSON escaping needed.
            out.push(b'"');
            out.extend_from_slice(obj.ref_id.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(&obj.entry_json);
        }
        out.extend_from_slice(b"}}");
        Ok(n)
    }
}

pub(crate) struct EventJson<'a> {
    pub(crate) data: &'a Data,
    pub(crate) ev: &'a Event,
}

struct DetailsJson<'a>(&'a Data, &'a [(&'static str, Val)]);

struct ValJson<'a>(&'a Data, &'a Val);

impl Serialize for EventJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("id", &self.data.id(self.ev.index))?;
        m.serialize_entry(
            "timestamp",
            &rfc3339_nanos(self.data.timestamp_ns(self.ev.index)),
        )?;
        m.serialize_entry("details", &DetailsJson(self.data, &self.ev.details))?;
        m.end()
    }
}

impl Serialize for DetailsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.1.len()))?;
        for (k, v) in self.1 {
            m.serialize_entry(k, &ValJson(self.0, v))?;
        }
        m.end()
    }
}

impl Serialize for ValJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let objs = &self.0.pools.objs;
        match self.1 {
            Val::Static(v) => s.serialize_str(v),
            Val::Owned(v) => s.serialize_str(v),
            Val::Team => s.serialize_str(&self.0.team),
            Val::Ref(r) => s.serialize_str(&objs[usize::from(*r)].ref_id),
            Val::Refs(rs) => {
                let mut seq = s.serialize_seq(Some(rs.len()))?;
                for r in rs {
                    seq.serialize_element(&objs[usize::from(*r)].ref_id)?;
                }
                seq.end()
            }
            Val::Null => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feistel_roundtrip() {
        let keys = Keys::new(42);
        for x in [0u64, 1, 2, 999_999, 1 << 40, u64::MAX - 1, u64::MAX] {
            assert_eq!(feistel_inv(feistel(x, &keys.feistel), &keys.feistel), x);
        }
    }

    #[test]
    fn id_roundtrip_and_shape() {
        let keys = Keys::new(7);
        for i in [
            0u64,
            1,
            2,
            1_000,
            999_999,
            1_000_000,
            123_456_789_012,
            u64::MAX,
        ] {
            let id = encode_id(&keys, i);
            assert_eq!(id.len(), 24, "{id}");
            assert!(id.ends_with("=="));
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'='));
            assert_eq!(decode_id(&keys, &id), Some(i));
            assert_eq!(decode_id(&keys, id.trim_end_matches('=')), Some(i));
            // Another seed does not recognise it.
            assert_eq!(decode_id(&Keys::new(8), &id), None);
        }
        assert_eq!(decode_id(&keys, ""), None);
        assert_eq!(decode_id(&keys, "72H8i_PqrupQhBdw8-qu6g=="), None);
        assert_eq!(decode_id(&keys, "not base64 at all!!"), None);
        assert_eq!(decode_id(&keys, "UD5pqjIhjKVQPmmqMiGMpQ=="), None);
    }

    #[test]
    fn rfc3339_matches_jiff() {
        for ns in [
            0i128,
            1,
            1_709_600_523_123_456_789,
            951_782_400_000_000_000, // 2000-02-29
            4_102_444_799_999_999_999,
            -1,
            -86_400_000_000_001,
        ] {
            let ours = rfc3339_nanos(ns);
            let ts = jiff::Timestamp::from_nanosecond(ns).expect("in range");
            let theirs = ts.strftime("%Y-%m-%dT%H:%M:%S.%9fZ").to_string();
            assert_eq!(ours, theirs);
            assert_eq!(ours.parse::<jiff::Timestamp>().ok(), Some(ts));
        }
    }

    #[test]
    fn ref_ids_shape_and_unique() {
        let data = Data::new(1, "william-faulkner", 0, 1_000_000_000);
        let mut seen = std::collections::HashSet::new();
        for o in &data.pools.objs {
            assert_eq!(o.ref_id.len(), 44);
            assert!(o.ref_id.ends_with('='));
            assert!(seen.insert(o.ref_id.clone()));
        }
        assert_eq!(seen.len(), N_OBJECTS);
    }
}
