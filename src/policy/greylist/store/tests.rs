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
        let dir =
            std::env::temp_dir().join(format!("icsmail-greylist-{name}-{}", std::process::id()));
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
        check(&gl, "192.0.2.1", "x@y.z", b, now + RENEW_EVERY),
        pass(now)
    );
    // Its mail renews the entry, once a day at most.
    let renewed = now + RENEW_EVERY + 1;
    assert_eq!(check(&gl, "192.0.2.1", "x@y.z", b, renewed), pass(renewed));
    assert_eq!(check(&gl, "192.0.2.1", a, b, renewed + 3600), pass(renewed));
    // Another /24 has its own clock.
    assert_eq!(check(&gl, "192.0.3.10", a, b, now), first_wait(now));
    // After keepDays without mail the network is greylisted again.
    assert_eq!(
        check(&gl, "192.0.2.10", a, b, renewed + KEEP - 1),
        pass(renewed + KEEP - 1)
    );
    let silent = renewed + KEEP - 1 + KEEP;
    assert_eq!(check(&gl, "192.0.2.10", a, b, silent), first_wait(silent));
}

#[test]
fn a_short_keep_is_renewed_every_half_of_it() {
    let dir = TempDir::new("short-keep");
    let gl = dir.open();
    let short = GreylistSettings {
        keep: Duration::from_secs(7200),
        ..settings()
    };
    let at = |now| {
        gl.check(&short, ip("198.51.100.7"), "a@b.c", "d@e.f", now)
            .unwrap()
    };
    assert!(matches!(at(T0), Decision::Wait { first: true, .. }));
    let passed = T0 + IGNORE;
    let until = |now: i64| Decision::Pass {
        network_whitelisted_until: now + 7200,
    };
    assert_eq!(at(passed), until(passed));
    assert_eq!(at(passed + 3600), until(passed));
    assert_eq!(at(passed + 3601), until(passed + 3601));
    assert_eq!(at(passed + 3601 + 3600), until(passed + 3601));
    // Silent for the whole keep since the last renewal: greylisted again.
    assert!(matches!(
        at(passed + 3601 + 7200),
        Decision::Wait { first: true, .. }
    ));
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
        .args([
            "--exact",
            "policy::greylist::store::tests::child_process_checks",
        ])
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
