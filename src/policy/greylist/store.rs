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
//!   passes without a look at its triplet until then. Its mail renews the entry (to `keepDays`
//!   from the renewal, at most once a day: [`RENEW_EVERY`]), so a network that writes at least
//!   every `keepDays` is never greylisted again, as with Postgrey's auto-whitelist; one that
//!   falls silent for longer is greylisted once more.
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

use crate::settings::GreylistSettings;

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

/// How often, at most, a whitelisted network's mail renews its entry (seconds).
pub const RENEW_EVERY: i64 = 86_400;

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
        let timing = Timing::of(settings);
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // The fast path, without a write lock: most mail comes from networks that passed and
        // were renewed within the last day.
        let whitelisted = whitelisted_until(&inner.conn, &network, now)?;
        if let Some(until) = whitelisted.filter(|&until| !timing.renewal_due(until, now)) {
            return Ok(Decision::Pass {
                network_whitelisted_until: until,
            });
        }
        let sender = address_key(sender);
        let recipient = address_key(recipient);
        let prune_due = inner.writes_since_prune.saturating_add(1) >= self.limits.prune_every;
        let tx = inner
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have passed (or renewed) the network since the look above.
        if let Some(until) = whitelisted_until(&tx, &network, now)? {
            if !timing.renewal_due(until, now) {
                return Ok(Decision::Pass {
                    network_whitelisted_until: until,
                });
            }
            let until = now.saturating_add(timing.keep);
            tx.prepare_cached("UPDATE networks SET until = ?2 WHERE network = ?1")?
                .execute(params![network, until])?;
            tx.commit()?;
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
                self.start_triplet(&tx, (&network, &sender, &recipient), &timing, now)?
            }
            Step::Pass => self.whitelist_network(&tx, &network, &timing, now)?,
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

    /// A first attempt of `(network, sender, recipient)`: its clock starts now (a stale
    /// entry starts over), and the table stays within its bound.
    fn start_triplet(
        &self,
        tx: &rusqlite::Transaction<'_>,
        (network, sender, recipient): (&str, &[u8; 16], &[u8; 16]),
        timing: &Timing,
        now: i64,
    ) -> Result<Decision, GreylistError> {
        tx.prepare_cached(
            "INSERT INTO triplets (network, sender, recipient, first_seen) \
             VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (network, sender, recipient) \
             DO UPDATE SET first_seen = excluded.first_seen",
        )?
        .execute(params![network, sender, recipient, now])?;
        if row_count(tx, Table::Triplets)? > self.limits.triplets {
            trim(tx, Table::Triplets, self.limits.triplets, timing, now)?;
        }
        Ok(Decision::Wait {
            retry_after: now.saturating_add(timing.ignore),
            first: true,
        })
    }

    /// A retry in time: the network is whitelisted for `keep`, its triplets dropped.
    fn whitelist_network(
        &self,
        tx: &rusqlite::Transaction<'_>,
        network: &str,
        timing: &Timing,
        now: i64,
    ) -> Result<Decision, GreylistError> {
        let until = now.saturating_add(timing.keep);
        tx.prepare_cached(
            "INSERT INTO networks (network, until) VALUES (?1, ?2) \
             ON CONFLICT (network) DO UPDATE SET until = excluded.until",
        )?
        .execute(params![network, until])?;
        // The network's triplets are moot while it is whitelisted.
        tx.prepare_cached("DELETE FROM triplets WHERE network = ?1")?
            .execute(params![network])?;
        if row_count(tx, Table::Networks)? > self.limits.networks {
            trim(tx, Table::Networks, self.limits.networks, timing, now)?;
        }
        Ok(Decision::Pass {
            network_whitelisted_until: until,
        })
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

    /// A whitelisted network's entry is renewed by its mail, at most once per
    /// [`RENEW_EVERY`] (or half of `keepDays`, when shorter), so the pass path rarely writes.
    fn renewal_due(&self, until: i64, now: i64) -> bool {
        let every = RENEW_EVERY.min(self.keep / 2);
        until < now.saturating_add(self.keep).saturating_sub(every)
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
mod tests;
