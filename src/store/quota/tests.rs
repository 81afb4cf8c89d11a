use super::*;

/// A mailbox root with INBOX and one folder, removed when dropped.
struct Mailbox(PathBuf);

impl Mailbox {
    fn new(name: &str) -> Mailbox {
        let root =
            std::env::temp_dir().join(format!("icsmail-quota-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for dir in ["cur", "new", "tmp", ".Sent/cur", ".Sent/new", ".Sent/tmp"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        Mailbox(root)
    }

    fn put(&self, dir: &str, name: &str, bytes: usize) {
        fs::write(self.0.join(dir).join(name), vec![b'x'; bytes]).unwrap();
    }

    fn file(&self) -> String {
        fs::read_to_string(self.0.join(MAILDIRSIZE)).unwrap()
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_missing_file_is_built_from_every_folder() {
    let mailbox = Mailbox::new("build");
    mailbox.put("new", "1.M1P1.h,S=100,W=103", 100);
    mailbox.put("cur", "2.M1P1.h,S=50,W=52:2,S", 50);
    // Without S= in the name, the file's length counts.
    mailbox.put(".Sent/cur", "3.M1P1.h:2,S", 70);
    // tmp/ and dot files are not mail.
    mailbox.put("tmp", "4.M1P1.h,S=999", 999);
    mailbox.put("cur", ".hidden", 999);
    let usage = usage(&mailbox.0, 1000).unwrap();
    assert_eq!(
        usage,
        Usage {
            bytes: 220,
            messages: 3
        }
    );
    assert_eq!(mailbox.file(), "1000S\n220 3\n");
}

#[test]
fn changes_are_appended_and_summed_without_looking_at_the_mailbox() {
    let mailbox = Mailbox::new("append");
    assert_eq!(usage(&mailbox.0, 1000).unwrap(), Usage::default());
    record(&mailbox.0, 300, 1).unwrap();
    record(&mailbox.0, 200, 1).unwrap();
    record(&mailbox.0, -300, -1).unwrap();
    // A file put there behind the store's back is not seen until a rebuild.
    mailbox.put("new", "5.M1P1.h,S=400", 400);
    assert_eq!(
        usage(&mailbox.0, 1000).unwrap(),
        Usage {
            bytes: 200,
            messages: 1
        }
    );
    assert_eq!(mailbox.file(), "1000S\n0 0\n300 1\n200 1\n-300 -1\n");
}

#[test]
fn record_never_creates_the_file() {
    let mailbox = Mailbox::new("nofile");
    record(&mailbox.0, 300, 1).unwrap();
    assert!(!mailbox.0.join(MAILDIRSIZE).exists());
}

#[test]
fn another_limit_a_bad_line_or_a_negative_sum_rebuilds() {
    let mailbox = Mailbox::new("rebuild");
    mailbox.put("new", "1.M1P1.h,S=100", 100);
    for stale in [
        "2000S\n100 1\n",                      // another limit
        "1000S\n100 1\nzzz\n",                 // not numbers
        "1000S\n100 1\n1 2 3\n",               // three numbers
        "1000S\n-500 -2\n",                    // below zero
        "1000S\n9223372036854775807 1\n1 1\n", // overflow
        "",
    ] {
        fs::write(mailbox.0.join(MAILDIRSIZE), stale).unwrap();
        assert_eq!(
            usage(&mailbox.0, 1000).unwrap(),
            Usage {
                bytes: 100,
                messages: 1
            },
            "{stale:?}"
        );
        assert_eq!(mailbox.file(), "1000S\n100 1\n");
    }
}

#[test]
fn a_line_cut_short_at_the_end_is_ignored() {
    let mailbox = Mailbox::new("torn");
    fs::write(mailbox.0.join(MAILDIRSIZE), "1000S\n100 1\n20").unwrap();
    assert_eq!(
        usage(&mailbox.0, 1000).unwrap(),
        Usage {
            bytes: 100,
            messages: 1
        }
    );
}

#[test]
fn a_long_file_is_rebuilt_once_it_is_old() {
    let mailbox = Mailbox::new("long");
    mailbox.put("new", "1.M1P1.h,S=10", 10);
    usage(&mailbox.0, 1000).unwrap();
    for _ in 0..2000 {
        record(&mailbox.0, 1, 0).unwrap();
    }
    let path = mailbox.0.join(MAILDIRSIZE);
    assert!(fs::metadata(&path).unwrap().len() > REBUILD_ABOVE_BYTES);
    // Young: still summed (10 + 2000).
    assert_eq!(usage(&mailbox.0, 1000).unwrap().bytes, 2010);
    let old = SystemTime::now() - REBUILD_AFTER - Duration::from_secs(1);
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(usage(&mailbox.0, 1000).unwrap().bytes, 10);
    assert_eq!(mailbox.file(), "1000S\n10 1\n");
}

#[test]
fn the_root_of_a_folder_is_found() {
    let mailbox = Mailbox::new("root");
    assert_eq!(mailbox_root(&mailbox.0), mailbox.0);
    assert_eq!(mailbox_root(&mailbox.0.join(".Sent")), mailbox.0);
}

#[test]
fn sizes_are_read_from_maildir_names() {
    assert_eq!(size_in_name("1.M1P1.h,S=123,W=130:2,S"), Some(123));
    assert_eq!(size_in_name("1.M1P1.h,W=130:2,S=5"), None);
    assert_eq!(size_in_name("1.M1P1.h"), None);
    assert_eq!(size_in_name("1.M1P1.h,S=notanumber"), None);
}
