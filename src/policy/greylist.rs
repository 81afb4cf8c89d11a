//! Greylisting (`spam.greylist.*`): the store of triplets and networks, and the decision for
//! one triplet. The engine decides *whether* a message is greylisted (only unauthenticated,
//! non-whitelisted mail on port 25); this module answers *what* for a triplet.
//!
//! # The rule
//! A triplet is (client network, envelope sender, recipient); the network is the client's /24
//! for IPv4 and its /64 for IPv6 (an IPv4-mapped IPv6 address counts as IPv4), since big
//! senders retry from another host of the same farm.
//!
//! - The first attempt of a triplet is refused for now ([`Decision::Wait`] with `first`).
//! - A retry sooner than `ignoreSeconds` after the first attempt is refused again; the clock is
//!   *not* restarted (the retry may come at first attempt + `ignoreSeconds`).
//! - A retry between `ignoreSeconds` and `awaitHours` (both ends included) passes and
//!   whitelists the client *network* for `keepDays` from then: every message from that network
//!   passes without a look at its triplet until then (the entry is not extended by use: when
//!   it runs out the network is greylisted once more, as the seed has it).
//! - A retry later than `awaitHours` counts as a first attempt.
//! - A triplet whose first attempt lies in the future (the clock went back) starts over too.
//!
//! Addresses are passed without `<>`; the null sender is the empty string and is a sender like
//! any other. They are compared in lower case (the whole address: local parts that differ only
//! in case share a triplet, which costs nothing but a shared retry) and cut to
//! [`MAX_ADDRESS_BYTES`] on a character boundary before and after lowering (two paths with the
//! same first 256 bytes share a triplet: harmless; a huge path is never copied whole). What is
//! stored is a 16-byte digest of that ([`ADDRESS_KEY_BYTES`]), so every row has the same
//! size whatever a client writes, and the file holds no address in clear.
//!
//! # The store
//! One SQLite database, `<stateDir>/greylist.sqlite3` ([`DB_FILE`], created mode 0600: it tells
//! who writes to whom), shared by every smtpd process on the host: SQLite in WAL mode lets readers run
//! beside one writer, and writers from several processes take turns ([`BUSY_TIMEOUT`]). (redb,
//! the other candidate, locks its file for one process.) `synchronous=NORMAL` in WAL mode: a
//! power cut may lose the last few committed triplets, never the database; that costs a sender
//! one more greylisting, never a message. State survives restarts and reloads.
//!
//! Bounds, so the store does not grow with what clients send:
//! - at most [`MAX_TRIPLETS`] triplets (200,000) and [`MAX_NETWORKS`] whitelisted networks
//!   (100,000); a write that takes a table past its limit first drops that table's expired
//!   rows, then the oldest (earliest first attempt; soonest expiry). Row counts are kept by
//!   triggers, so the check costs one lookup. Measured: a full triplet table is about 33 MB
//!   on disk (the same for ordinary and for 256-byte addresses), both tables full about
//!   38 MB. The file does not shrink when rows go; their pages are reused.
//! - expired rows (triplets older than `awaitHours` that never passed, networks past their
//!   `keepDays`) are removed every [`PRUNE_EVERY_WRITES`] writes of a process, and whenever a
//!   table reaches its limit;
//! - SQLite's page cache is [`CACHE_KIB`] (4 MiB) per connection, one connection per handle;
//!   the WAL file is cut back to [`WAL_LIMIT_BYTES`] (4 MiB) after each checkpoint.
//!
//! A [`Greylist`] is one connection behind a mutex: checks are blocking (call them from
//! `spawn_blocking`) and may come from any thread.

use std::fs::OpenOptions;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha256};

/// The database's file name in `stateDir`.
pub const DB_FILE: &str = "greylist.sqlite3";
/// Triplets kept at most. A busy MX greylists a few first attempts a second; 200,000 holds
/// more than the default `awaitHours` (4 h) of them at 10 a second, and is about 33 MB on
/// disk.
pub const MAX_TRIPLETS: u64 = 200_000;
/// Whitelisted networks kept at most: more distinct sending networks than a busy MX sees in
/// the default `keepDays` (36), about 6 MB on disk.
pub const MAX_NETWORKS: u64 = 100_000;
/// The longest address stored, in bytes: an RFC 5321 path is at most 256 octets
/// (§4.5.3.1.3), brackets included.
pub const MAX_ADDRESS_BYTES: usize = 256;
/// The bytes of an address's digest that are stored: 128 bits, so that two addresses sharing
/// a key by chance is out of reach even among every triplet ever seen.
pub const ADDRESS_KEY_BYTES: usize = 16;
/// Expired rows are swept after this many writes of one handle.
pub const PRUNE_EVERY_WRITES: u32 = 1_000;
/// SQLite's page cache per connection, in KiB.
pub const CACHE_KIB: i64 = 4_096;
/// How long a writer waits for another (process) to finish before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The size the WAL file is cut back to after a checkpoint.
pub const WAL_LIMIT_BYTES: i64 = 4 * 1024 * 1024;

/// The layout of the database (`PRAGMA user_version`); another one is refused.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE triplets (
    id INTEGER PRIMARY KEY,
    network TEXT NOT NULL,
    sender BLOB NOT NULL,
    recipient BLOB NOT NULL,
    first_seen INTEGER NOT NULL,
    UNIQUE (network, sender, recipient)
);
CREATE INDEX triplets_by_age ON triplets (first_seen);
CREATE TABLE networks (
    network TEXT PRIMARY KEY,
    until INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX networks_by_expiry ON networks (until);
CREATE TABLE counts (name TEXT PRIMARY KEY, rows INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO counts VALUES ('triplets', 0), ('networks', 0);
CREATE TRIGGER triplet_added AFTER INSERT ON triplets
    BEGIN UPDATE counts SET rows = rows + 1 WHERE name = 'triplets'; END;
CREATE TRIGGER triplet_removed AFTER DELETE ON triplets
    BEGIN UPDATE counts SET rows = rows - 1 WHERE name = 'triplets'; END;
CREATE TRIGGER network_added AFTER INSERT ON networks
    BEGIN UPDATE counts SET rows = rows + 1 WHERE name = 'networks'; END;
CREATE TRIGGER network_removed AFTER DELETE ON networks
    BEGIN UPDATE counts SET rows = rows - 1 WHERE name = 'networks'; END;
";

/// `spam.greylist.*` as durations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreylistSettings {
    /// `ignoreSeconds`: retries sooner than this are refused.
    pub ignore: Duration,
    /// `awaitHours`: retries later than this start over.
    pub await_retry: Duration,
    /// `keepDays`: how long a network that passed stays whitelisted.
    pub keep: Duration,
}

/// The answer for one triplet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The client network passed before (whitelisted until `network_whitelisted_until`), or
    /// this retry came in the window: accept.
    Pass { network_whitelisted_until: i64 },
    /// Refuse for now; the client may retry after `retry_after` (seconds since the epoch).
    /// `first`: this attempt (re)started the triplet's clock.
    Wait { retry_after: i64, first: bool },
}

#[derive(Debug, thiserror::Error)]
pub enum GreylistError {
    #[error("cannot create the greylist database {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot open the greylist database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the greylist database {path} has layout version {found}, this program knows {SCHEMA_VERSION}")]
    Schema { path: PathBuf, found: i64 },
    #[error("the greylist database {path} cannot use WAL mode (it is in {mode} mode)")]
    JournalMode { path: PathBuf, mode: String },
    #[error("greylist database: {0}")]
    Database(#[from] rusqlite::Error),
}

/// How big the tables may grow and how often they are swept (constants but in tests).
#[derive(Debug, Clone, Copy)]
struct Limits {
    triplets: u64,
    networks: u64,
    prune_every: u32,
}

impl Limits {
    const DEFAULT: Limits = Limits {
        triplets: MAX_TRIPLETS,
        networks: MAX_NETWORKS,
        prune_every: PRUNE_EVERY_WRITES,
    };
}

/// The greylist store of this host.
pub struct Greylist {
    inner: Mutex<Inner>,
    limits: Limits,
}

struct Inner {
    conn: Connection,
    writes_since_prune: u32,
}

impl Greylist {
    /// Opens (creates) the store in `state_dir` (blocking; cheap to call once per daemon).
    pub fn open(state_dir: &Path) -> Result<Greylist, GreylistError> {
        Greylist::open_with(state_dir, Limits::DEFAULT)
    }

    fn open_with(state_dir: &Path, limits: Limits) -> Result<Greylist, GreylistError> {
        let path = state_dir.join(DB_FILE);
        // SQLite gives the -wal and -shm files the mode of the database file.
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| GreylistError::Create {
                path: path.clone(),
                source,
            })?;
        let open_error = |source| GreylistError::Open {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(open_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(open_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(GreylistError::JournalMode { path, mode });
        }
        conn.execute_batch(&format!(
            "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -{CACHE_KIB}; \
             PRAGMA journal_size_limit = {WAL_LIMIT_BYTES};"
        ))
        .map_err(open_error)?;
        // Immediate: two processes starting at once must not both create the tables.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(open_error)?;
        let found: i64 = tx
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(open_error)?;
        match found {
            0 => {
                tx.execute_batch(SCHEMA).map_err(open_error)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .map_err(open_error)?;
            }
            SCHEMA_VERSION => {}
            found => return Err(GreylistError::Schema { path, found }),
        }
        tx.commit().map_err(open_error)?;
        Ok(Greylist {
            inner: Mutex::new(Inner {
                conn,
                writes_since_prune: 0,
            }),
            limits,
        })
    }

    /// The decision for one triplet at `now` (seconds since the epoch). Blocking.
    pub fn check(
        &self,
        settings: &GreylistSettings,
        client: IpAddr,
        sender: &str,
        recipient: &str,
        now: i64,
    ) -> Result<Decision, GreylistError> {
        let network = client_network(client);
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // The fast path, without a write lock: most mail comes from networks that passed.
        if let Some(until) = whitelisted_until(&inner.conn, &network, now)? {
            return Ok(Decision::Pass {
                network_whitelisted_until: until,
            });
        }
        let sender = address_key(sender);
        let recipient = address_key(recipient);
        let timing = Timing::of(settings);
        let prune_due = inner.writes_since_prune.saturating_add(1) >= self.limits.prune_every;
        let tx = inner
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have passed the network since the look above.
        if let Some(until) = whitelisted_until(&tx, &network, now)? {
            return Ok(Decision::Pass {
                network_whitelisted_until: until,
            });
        }
        let first_seen: Option<i64> = tx
            .prepare_cached(
                "SELECT first_seen FROM triplets \
                 WHERE network = ?1 AND sender = ?2 AND recipient = ?3",
            )?
            .query_row(params![network, sender, recipient], |row| row.get(0))
            .optional()?;
        let decision = match timing.step(first_seen, now) {
            Step::TooEarly { first_seen } => {
                // Nothing written: the clock runs on from the first attempt.
                return Ok(Decision::Wait {
                    retry_after: first_seen.saturating_add(timing.ignore),
                    first: false,
                });
            }
            Step::Start => {
                tx.prepare_cached(
                    "INSERT INTO triplets (network, sender, recipient, first_seen) \
                     VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (network, sender, recipient) \
                     DO UPDATE SET first_seen = excluded.first_seen",
                )?
                .execute(params![network, sender, recipient, now])?;
                if row_count(&tx, Table::Triplets)? > self.limits.triplets {
                    trim(&tx, Table::Triplets, self.limits.triplets, &timing, now)?;
                }
                Decision::Wait {
                    retry_after: now.saturating_add(timing.ignore),
                    first: true,
                }
            }
            Step::Pass => {
                let until = now.saturating_add(timing.keep);
                tx.prepare_cached(
                    "INSERT INTO networks (network, until) VALUES (?1, ?2) \
                     ON CONFLICT (network) DO UPDATE SET until = excluded.until",
                )?
                .execute(params![network, until])?;
                // The network's triplets are moot while it is whitelisted.
                tx.prepare_cached("DELETE FROM triplets WHERE network = ?1")?
                    .execute(params![network])?;
                if row_count(&tx, Table::Networks)? > self.limits.networks {
                    trim(&tx, Table::Networks, self.limits.networks, &timing, now)?;
                }
                Decision::Pass {
                    network_whitelisted_until: until,
                }
            }
        };
        if prune_due {
            expire(&tx, Table::Triplets, &timing, now)?;
            expire(&tx, Table::Networks, &timing, now)?;
        }
        tx.commit()?;
        inner.writes_since_prune = if prune_due {
            0
        } else {
            inner.writes_since_prune + 1
        };
        Ok(decision)
    }
}

/// The network a client is greylisted as: `a.b.c.0/24` or `x:x:x:x::/64`.
pub fn client_network(client: IpAddr) -> String {
    match client.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{}/24", Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// An address as compared: lowercase, at most [`MAX_ADDRESS_BYTES`].
fn normalized(address: &str) -> String {
    // Cut first so a huge path is never copied whole, again after lowering (it may grow).
    let lowered = prefix_within(address, MAX_ADDRESS_BYTES).to_lowercase();
    prefix_within(&lowered, MAX_ADDRESS_BYTES).to_owned()
}

/// The stored form of an address: the first [`ADDRESS_KEY_BYTES`] of the SHA-256 of its
/// normalized form, so a row's size does not depend on what the client wrote.
fn address_key(address: &str) -> [u8; ADDRESS_KEY_BYTES] {
    let digest = Sha256::digest(normalized(address).as_bytes());
    let mut key = [0; ADDRESS_KEY_BYTES];
    key.copy_from_slice(&digest[..ADDRESS_KEY_BYTES]);
    key
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn prefix_within(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The settings in seconds, for arithmetic with `now`.
struct Timing {
    ignore: i64,
    await_retry: i64,
    keep: i64,
}

/// What a triplet's history says of this attempt.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// First attempt, or the last one is too old (or in the future): (re)start the clock.
    Start,
    /// Sooner than `ignore` after the first attempt.
    TooEarly { first_seen: i64 },
    /// In the window: the network passes.
    Pass,
}

impl Timing {
    fn of(settings: &GreylistSettings) -> Timing {
        let seconds = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Timing {
            ignore: seconds(settings.ignore),
            await_retry: seconds(settings.await_retry),
            keep: seconds(settings.keep),
        }
    }

    fn step(&self, first_seen: Option<i64>, now: i64) -> Step {
        let Some(first_seen) = first_seen else {
            return Step::Start;
        };
        match now.checked_sub(first_seen) {
            Some(elapsed) if elapsed < 0 => Step::Start,
            Some(elapsed) if elapsed < self.ignore => Step::TooEarly { first_seen },
            Some(elapsed) if elapsed <= self.await_retry => Step::Pass,
            _ => Step::Start,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Table {
    Triplets,
    Networks,
}

fn whitelisted_until(
    conn: &Connection,
    network: &str,
    now: i64,
) -> Result<Option<i64>, rusqlite::Error> {
    conn.prepare_cached("SELECT until FROM networks WHERE network = ?1 AND until > ?2")?
        .query_row(params![network, now], |row| row.get(0))
        .optional()
}

fn row_count(conn: &Connection, table: Table) -> Result<u64, rusqlite::Error> {
    let name = match table {
        Table::Triplets => "triplets",
        Table::Networks => "networks",
    };
    let rows: i64 = conn
        .prepare_cached("SELECT rows FROM counts WHERE name = ?1")?
        .query_row(params![name], |row| row.get(0))?;
    Ok(u64::try_from(rows).unwrap_or(0))
}

/// Removes the rows of `table` that no longer count at `now`.
fn expire(
    conn: &Connection,
    table: Table,
    timing: &Timing,
    now: i64,
) -> Result<(), rusqlite::Error> {
    match table {
        Table::Triplets => conn
            .prepare_cached("DELETE FROM triplets WHERE first_seen < ?1")?
            .execute(params![now.saturating_sub(timing.await_retry)])?,
        Table::Networks => conn
            .prepare_cached("DELETE FROM networks WHERE until <= ?1")?
            .execute(params![now])?,
    };
    Ok(())
}

/// Brings `table` back to `limit` rows: the expired ones first, then the oldest.
fn trim(
    conn: &Connection,
    table: Table,
    limit: u64,
    timing: &Timing,
    now: i64,
) -> Result<(), rusqlite::Error> {
    expire(conn, table, timing, now)?;
    let excess = row_count(conn, table)?.saturating_sub(limit);
    if excess == 0 {
        return Ok(());
    }
    let excess = i64::try_from(excess).unwrap_or(i64::MAX);
    match table {
        Table::Triplets => conn
            .prepare_cached(
                "DELETE FROM triplets WHERE id IN \
                 (SELECT id FROM triplets ORDER BY first_seen LIMIT ?1)",
            )?
            .execute(params![excess])?,
        Table::Networks => conn
            .prepare_cached(
                "DELETE FROM networks WHERE network IN \
                 (SELECT network FROM networks ORDER BY until LIMIT ?1)",
            )?
            .execute(params![excess])?,
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const T0: i64 = 1_700_000_000;
    const IGNORE: i64 = 60;
    const AWAIT: i64 = 4 * 3600;
    const KEEP: i64 = 36 * 86_400;

    fn settings() -> GreylistSettings {
        GreylistSettings {
            ignore: Duration::from_secs(IGNORE as u64),
            await_retry: Duration::from_secs(AWAIT as u64),
            keep: Duration::from_secs(KEEP as u64),
        }
    }

    /// A fresh directory, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir()
                .join(format!("icsmail-greylist-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn open(&self) -> Greylist {
            Greylist::open(&self.0).unwrap()
        }

        /// A plain connection to look at the tables behind the store's back.
        fn raw(&self) -> Connection {
            Connection::open(self.0.join(DB_FILE)).unwrap()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn check(gl: &Greylist, client: &str, sender: &str, recipient: &str, now: i64) -> Decision {
        gl.check(&settings(), ip(client), sender, recipient, now)
            .unwrap()
    }

    fn first_wait(now: i64) -> Decision {
        Decision::Wait {
            retry_after: now + IGNORE,
            first: true,
        }
    }

    fn pass(now: i64) -> Decision {
        Decision::Pass {
            network_whitelisted_until: now + KEEP,
        }
    }

    /// The rows of `table` counted by SQLite and by the triggers.
    fn rows(raw: &Connection, table: &str) -> (u64, u64) {
        let actual: i64 = raw
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        let counted: i64 = raw
            .query_row("SELECT rows FROM counts WHERE name = ?1", [table], |r| {
                r.get(0)
            })
            .unwrap();
        (actual as u64, counted as u64)
    }

    #[test]
    fn the_whole_timeline_of_an_ipv4_network() {
        let dir = TempDir::new("timeline");
        let gl = dir.open();
        let (a, b) = ("alice@example.org", "bob@example.net");
        assert_eq!(check(&gl, "192.0.2.10", a, b, T0), first_wait(T0));
        // Too early, twice: refused, and the clock still runs from T0.
        let early = Decision::Wait {
            retry_after: T0 + IGNORE,
            first: false,
        };
        assert_eq!(check(&gl, "192.0.2.10", a, b, T0 + 1), early);
        assert_eq!(check(&gl, "192.0.2.10", a, b, T0 + IGNORE - 1), early);
        // Another host of the same /24 is the same triplet.
        let now = T0 + IGNORE;
        assert_eq!(check(&gl, "192.0.2.200", a, b, now), pass(now));
        // Every later message from the /24 passes, whatever its triplet.
        assert_eq!(
            check(&gl, "192.0.2.77", "", "carol@example.net", now + 5),
            pass(now)
        );
        assert_eq!(
            check(&gl, "192.0.2.1", "x@y.z", b, now + KEEP - 1),
            pass(now)
        );
        // Another /24 has its own clock.
        assert_eq!(check(&gl, "192.0.3.10", a, b, now), first_wait(now));
        // After keepDays the network is greylisted again.
        assert_eq!(
            check(&gl, "192.0.2.10", a, b, now + KEEP),
            first_wait(now + KEEP)
        );
    }

    #[test]
    fn the_window_ends_are_included_and_a_late_retry_starts_over() {
        let dir = TempDir::new("window");
        let gl = dir.open();
        let (a, b) = ("a@example.org", "b@example.net");
        assert_eq!(check(&gl, "198.51.100.1", a, b, T0), first_wait(T0));
        assert_eq!(
            check(&gl, "198.51.100.1", a, b, T0 + AWAIT),
            pass(T0 + AWAIT)
        );

        assert_eq!(check(&gl, "203.0.113.1", a, b, T0), first_wait(T0));
        let late = T0 + AWAIT + 1;
        assert_eq!(check(&gl, "203.0.113.1", a, b, late), first_wait(late));
        assert!(matches!(
            check(&gl, "203.0.113.1", a, b, late + IGNORE - 1),
            Decision::Wait { first: false, .. }
        ));
        assert_eq!(
            check(&gl, "203.0.113.1", a, b, late + IGNORE),
            pass(late + IGNORE)
        );
    }

    #[test]
    fn ipv6_clients_are_grouped_by_their_64_and_mapped_ipv4_counts_as_ipv4() {
        let dir = TempDir::new("ipv6");
        let gl = dir.open();
        let (a, b) = ("a@example.org", "b@example.net");
        assert_eq!(check(&gl, "2001:db8:1:2::1", a, b, T0), first_wait(T0));
        let now = T0 + IGNORE;
        assert_eq!(
            check(&gl, "2001:db8:1:2:ffff:ffff:ffff:9", a, b, now),
            pass(now)
        );
        assert_eq!(check(&gl, "2001:db8:1:2:abcd::", "", b, now), pass(now));
        assert_eq!(check(&gl, "2001:db8:1:3::1", a, b, now), first_wait(now));

        assert_eq!(check(&gl, "::ffff:192.0.2.1", a, b, T0), first_wait(T0));
        assert_eq!(check(&gl, "192.0.2.99", a, b, now), pass(now));
        assert_eq!(client_network(ip("::ffff:192.0.2.1")), "192.0.2.0/24");
        assert_eq!(
            client_network(ip("2001:db8:1:2:3:4:5:6")),
            "2001:db8:1:2::/64"
        );
    }

    #[test]
    fn a_first_attempt_in_the_future_starts_over() {
        let timing = Timing::of(&settings());
        assert_eq!(timing.step(Some(T0 + 10), T0), Step::Start);
        assert_eq!(timing.step(None, T0), Step::Start);
        assert_eq!(timing.step(Some(i64::MIN), i64::MAX), Step::Start);
        assert_eq!(
            timing.step(Some(T0), T0 + IGNORE - 1),
            Step::TooEarly { first_seen: T0 }
        );
        assert_eq!(timing.step(Some(T0), T0 + IGNORE), Step::Pass);
    }

    #[test]
    fn huge_settings_and_times_saturate_instead_of_overflowing() {
        let dir = TempDir::new("saturate");
        let gl = dir.open();
        let huge = GreylistSettings {
            ignore: Duration::from_secs(u64::MAX),
            await_retry: Duration::from_secs(u64::MAX),
            keep: Duration::from_secs(u64::MAX),
        };
        let now = i64::MAX - 5;
        assert_eq!(
            gl.check(&huge, ip("192.0.2.1"), "a", "b", now).unwrap(),
            Decision::Wait {
                retry_after: i64::MAX,
                first: true
            }
        );
    }

    #[test]
    fn the_state_survives_closing_and_reopening() {
        let dir = TempDir::new("durable");
        let (a, b) = ("a@example.org", "b@example.net");
        {
            let gl = dir.open();
            assert_eq!(check(&gl, "192.0.2.1", a, b, T0), first_wait(T0));
            assert_eq!(check(&gl, "2001:db8::1", a, b, T0), first_wait(T0));
            assert_eq!(
                check(&gl, "2001:db8::1", a, b, T0 + IGNORE),
                pass(T0 + IGNORE)
            );
        }
        let gl = dir.open();
        // The triplet's clock was kept: the retry passes, not a new first attempt.
        assert_eq!(
            check(&gl, "192.0.2.1", a, b, T0 + IGNORE),
            pass(T0 + IGNORE)
        );
        assert_eq!(
            check(&gl, "2001:db8::2", "", "", T0 + 100),
            pass(T0 + IGNORE)
        );
    }

    #[test]
    fn two_handles_on_one_file_see_each_others_writes() {
        let dir = TempDir::new("two");
        let (one, two) = (dir.open(), dir.open());
        let (a, b) = ("a@example.org", "b@example.net");
        assert_eq!(check(&one, "192.0.2.1", a, b, T0), first_wait(T0));
        assert!(matches!(
            check(&two, "192.0.2.1", a, b, T0 + 1),
            Decision::Wait { first: false, .. }
        ));
        assert_eq!(
            check(&two, "192.0.2.1", a, b, T0 + IGNORE),
            pass(T0 + IGNORE)
        );
        assert_eq!(
            check(&one, "192.0.2.5", "", "", T0 + IGNORE + 1),
            pass(T0 + IGNORE)
        );
    }

    /// Where [`child_process_checks`] finds the store, set only by [`processes_share_the_store`].
    const CHILD_DIR_ENV: &str = "ICSMAIL_GREYLIST_TEST_CHILD_DIR";
    const CHILD_ROUNDS: u8 = 200;

    #[test]
    #[ignore = "the other process of processes_share_the_store"]
    fn child_process_checks() {
        let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
            return;
        };
        let gl = Greylist::open(Path::new(&dir)).unwrap();
        for i in 0..CHILD_ROUNDS {
            assert_eq!(
                check(&gl, &format!("10.200.{i}.1"), "s", "r", T0),
                first_wait(T0)
            );
        }
        // The parent's first attempt is seen here, and this retry passes its network.
        assert_eq!(
            check(&gl, "192.0.2.1", "s", "r", T0 + IGNORE),
            pass(T0 + IGNORE)
        );
    }

    #[test]
    fn processes_share_the_store() {
        let dir = TempDir::new("processes");
        let gl = dir.open();
        assert_eq!(check(&gl, "192.0.2.1", "s", "r", T0), first_wait(T0));
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "policy::greylist::tests::child_process_checks"])
            .args(["--ignored", "--quiet", "--test-threads=1"])
            .env(CHILD_DIR_ENV, &dir.0)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Writes of both processes at once: they take turns, none fails.
        for i in 0..CHILD_ROUNDS {
            assert_eq!(
                check(&gl, &format!("10.100.{i}.1"), "s", "r", T0),
                first_wait(T0)
            );
        }
        let output = child.wait_with_output().unwrap();
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{report}");
        assert!(report.contains("1 passed"), "the child test ran: {report}");
        // The child's pass is seen here.
        assert_eq!(
            check(&gl, "192.0.2.9", "", "", T0 + IGNORE + 1),
            pass(T0 + IGNORE)
        );
        let both = 2 * u64::from(CHILD_ROUNDS);
        assert_eq!(rows(&dir.raw(), "triplets"), (both, both));
    }

    #[test]
    fn concurrent_checks_from_threads_and_handles() {
        let dir = TempDir::new("threads");
        let handles = [Arc::new(dir.open()), Arc::new(dir.open())];
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let gl = Arc::clone(&handles[usize::from(t % 2)]);
                std::thread::spawn(move || {
                    let mut firsts = 0;
                    for i in 0..50u8 {
                        // One triplet every thread tries, and one of its own per round.
                        let shared = check(&gl, "192.0.2.1", "s@x", "r@y", T0);
                        firsts += usize::from(matches!(shared, Decision::Wait { first: true, .. }));
                        let own = check(&gl, &format!("10.{t}.{i}.1"), "s@x", "r@y", T0);
                        assert_eq!(own, first_wait(T0));
                    }
                    firsts
                })
            })
            .collect();
        let firsts: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(firsts, 1, "the shared triplet started exactly once");
        assert_eq!(rows(&dir.raw(), "triplets"), (401, 401));
    }

    #[test]
    fn addresses_are_keyed_in_lower_case_and_the_null_sender_is_a_sender() {
        let dir = TempDir::new("case");
        let gl = dir.open();
        assert_eq!(
            check(&gl, "192.0.2.1", "Alice@Example.ORG", "Bob@EXAMPLE.net", T0),
            first_wait(T0)
        );
        assert!(matches!(
            check(
                &gl,
                "192.0.2.1",
                "alice@example.org",
                "bob@example.net",
                T0 + 1
            ),
            Decision::Wait { first: false, .. }
        ));
        assert_eq!(
            check(&gl, "192.0.2.1", "", "bob@example.net", T0),
            first_wait(T0)
        );
        assert!(matches!(
            check(&gl, "192.0.2.1", "", "bob@example.net", T0 + 1),
            Decision::Wait { first: false, .. }
        ));
        // Bytes SQLite's text functions might trip on are compared as bytes.
        assert_eq!(check(&gl, "192.0.2.1", "a\0b", "r", T0), first_wait(T0));
        assert_eq!(check(&gl, "192.0.2.1", "a\0c", "r", T0), first_wait(T0));
    }

    #[test]
    fn addresses_are_cut_to_the_limit_on_character_boundaries() {
        let at_limit = "a".repeat(MAX_ADDRESS_BYTES);
        assert_eq!(normalized(&at_limit), at_limit);
        let over = "A".repeat(MAX_ADDRESS_BYTES + 1);
        assert_eq!(normalized(&over), at_limit);
        assert_eq!(address_key(&over), address_key(&at_limit));
        assert_ne!(address_key(&at_limit[1..]), address_key(&at_limit));
        // 'é' is two bytes: 129 of them cross the limit in the middle of one.
        let accents = "É".repeat(MAX_ADDRESS_BYTES / 2 + 1);
        assert_eq!(normalized(&accents), "é".repeat(MAX_ADDRESS_BYTES / 2));
        // 'İ' (2 bytes) lowers to 3 bytes: the key is cut again after lowering.
        let growing = normalized(&"İ".repeat(MAX_ADDRESS_BYTES / 2));
        assert!(growing.len() <= MAX_ADDRESS_BYTES, "{}", growing.len());
    }

    #[test]
    fn a_megabyte_path_is_stored_as_a_fixed_size_key() {
        let dir = TempDir::new("huge");
        let gl = dir.open();
        let huge = "x".repeat(1024 * 1024);
        assert_eq!(check(&gl, "192.0.2.1", &huge, &huge, T0), first_wait(T0));
        let longest: i64 = dir
            .raw()
            .query_row(
                "SELECT max(max(length(sender)), max(length(recipient))) FROM triplets",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(longest, ADDRESS_KEY_BYTES as i64);
        // Paths that agree in their first MAX_ADDRESS_BYTES share the triplet.
        let other = format!("{}y", "x".repeat(MAX_ADDRESS_BYTES));
        assert!(matches!(
            check(&gl, "192.0.2.1", &other, &huge, T0 + 1),
            Decision::Wait { first: false, .. }
        ));
    }

    fn small(dir: &TempDir, triplets: u64, networks: u64, prune_every: u32) -> Greylist {
        let limits = Limits {
            triplets,
            networks,
            prune_every,
        };
        Greylist::open_with(&dir.0, limits).unwrap()
    }

    #[test]
    fn full_tables_lose_their_oldest_rows() {
        let dir = TempDir::new("limits");
        let gl = small(&dir, 10, 5, u32::MAX);
        for i in 0..30 {
            assert_eq!(
                check(&gl, &format!("10.0.{i}.1"), "s", "r", T0 + i),
                first_wait(T0 + i)
            );
        }
        let raw = dir.raw();
        assert_eq!(rows(&raw, "triplets"), (10, 10));
        // The newest ten are kept: their retries pass; an older one starts over.
        assert_eq!(check(&gl, "10.0.20.1", "s", "r", T0 + 100), pass(T0 + 100));
        assert_eq!(
            check(&gl, "10.0.19.1", "s", "r", T0 + 100),
            first_wait(T0 + 100)
        );

        for i in 0..20 {
            let (client, now) = (format!("172.16.{i}.1"), T0 + 1000 + 100 * i);
            assert_eq!(check(&gl, &client, "s", "r", now), first_wait(now));
            assert_eq!(
                check(&gl, &client, "s", "r", now + IGNORE),
                pass(now + IGNORE)
            );
        }
        assert_eq!(rows(&raw, "networks"), (5, 5));
        let newest = T0 + 1000 + 100 * 19 + IGNORE;
        assert_eq!(check(&gl, "172.16.19.9", "", "", newest), pass(newest));
        assert!(matches!(
            check(&gl, "172.16.14.9", "", "", newest),
            Decision::Wait { first: true, .. }
        ));
    }

    #[test]
    fn expired_rows_are_swept_every_few_writes() {
        let dir = TempDir::new("sweep");
        let gl = small(&dir, 1000, 1000, 4);
        let raw = dir.raw();
        // Writes 1 to 3: a triplet, and a network passed with its triplet deleted.
        assert_eq!(check(&gl, "192.0.2.1", "s", "r", T0), first_wait(T0));
        assert_eq!(check(&gl, "198.51.100.1", "s", "r", T0), first_wait(T0));
        assert_eq!(
            check(&gl, "198.51.100.1", "s", "r", T0 + IGNORE),
            pass(T0 + IGNORE)
        );
        assert_eq!(rows(&raw, "triplets"), (1, 1));
        assert_eq!(rows(&raw, "networks"), (1, 1));
        // Write 4, once both have expired: the sweep leaves only the new triplet.
        let later = T0 + IGNORE + KEEP;
        assert_eq!(
            check(&gl, "203.0.113.1", "s", "r", later),
            first_wait(later)
        );
        assert_eq!(rows(&raw, "triplets"), (1, 1));
        assert_eq!(rows(&raw, "networks"), (0, 0));
    }

    #[test]
    fn a_full_table_at_the_real_limit_stays_there() {
        let dir = TempDir::new("real-limit");
        let gl = dir.open();
        let mut raw = dir.raw();
        let tx = raw.transaction().unwrap();
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO triplets (network, sender, recipient, first_seen) \
                     VALUES (?1, randomblob(16), randomblob(16), ?2)",
                )
                .unwrap();
            for i in 0..MAX_TRIPLETS as i64 {
                let network = format!("10.{}.{}.0/24", i / 65536, i / 256 % 256);
                insert
                    .execute(params![format!("{network}#{i}"), T0 + i / 1000])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        assert_eq!(rows(&raw, "triplets"), (MAX_TRIPLETS, MAX_TRIPLETS));
        let now = T0 + 300;
        for i in 0..10 {
            assert_eq!(
                check(&gl, &format!("192.0.{i}.1"), "s", "r", now),
                first_wait(now)
            );
        }
        assert_eq!(rows(&raw, "triplets"), (MAX_TRIPLETS, MAX_TRIPLETS));
        let oldest: i64 = raw
            .query_row(
                "SELECT count(*) FROM triplets WHERE first_seen = ?1",
                [T0],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(oldest, 1000 - 10, "the ten oldest went");
    }

    #[test]
    fn a_file_that_is_not_a_greylist_is_refused_naming_it() {
        let dir = TempDir::new("foreign");
        std::fs::write(dir.0.join(DB_FILE), vec![0x55; 8192]).unwrap();
        let error = Greylist::open(&dir.0).err().unwrap();
        assert!(matches!(error, GreylistError::Open { .. }), "{error:?}");
        assert!(error.to_string().contains(DB_FILE), "{error}");

        std::fs::remove_file(dir.0.join(DB_FILE)).unwrap();
        dir.raw().pragma_update(None, "user_version", 7).unwrap();
        let error = Greylist::open(&dir.0).err().unwrap();
        assert!(
            matches!(error, GreylistError::Schema { found: 7, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn a_missing_state_dir_is_an_error_naming_the_file() {
        let dir = TempDir::new("missing");
        let error = Greylist::open(&dir.0.join("nope")).err().unwrap();
        assert!(matches!(error, GreylistError::Create { .. }), "{error:?}");
        assert!(error.to_string().contains("nope"), "{error}");
    }

    #[test]
    fn the_database_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("mode");
        let _gl = dir.open();
        let mode = std::fs::metadata(dir.0.join(DB_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_greylist_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Greylist>();
    }
}
