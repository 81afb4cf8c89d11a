use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::*;

struct Watch {
    done: AtomicU64,
    total: AtomicU64,
    cancel: AtomicBool,
}

impl Watch {
    fn new() -> Watch {
        Watch {
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            cancel: AtomicBool::new(false),
        }
    }
}

impl Observer for Watch {
    fn progress(&self, done: u64, total: u64) {
        self.done.store(done, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

fn temp(name: &str) -> PathBuf {
    crate::test_support::fresh_dir(&format!("relocate-{name}"))
}

fn message(tree: &Path, name: &str, text: &str) {
    let path = tree.join("example.org/alice/cur").join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn move_to(state: &Path, target: &Path, watch: &Watch) -> Result<Outcome, MoveError> {
    let mut overrides_written = 0;
    let outcome = relocate(
        MoveRequest {
            state_dir: state,
            target,
            before_switch: &mut || {
                overrides_written += 1;
                Ok(())
            },
        },
        watch,
    );
    if matches!(outcome, Ok(Outcome::Copied { .. } | Outcome::Switched)) {
        assert_eq!(
            overrides_written, 1,
            "before_switch runs once, before the switch"
        );
    }
    outcome
}

#[test]
fn a_copy_switches_the_link_and_marks_both_trees() {
    let base = temp("copy");
    let (state, old, new) = (base.join("state"), base.join("old"), base.join("new"));
    fs::create_dir_all(&state).unwrap();
    root::ensure_link(&state, &old).unwrap();
    message(&old, "1.M1P1.h,S=5", "hello");
    message(&old, "2.M1P1.h,S=7", "goodbye");
    fs::write(old.join("example.org/alice/maildirsize"), "0S\n12 2\n").unwrap();
    let watch = Watch::new();
    let outcome = move_to(&state, &new, &watch).unwrap();
    let Outcome::Copied { files, bytes, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!((files, bytes), (3, 5 + 7 + 8));
    assert_eq!(watch.done.load(Ordering::Relaxed), 20);
    assert_eq!(root::in_force(&state).unwrap(), Some(new.clone()));
    let via_link = root::link_path(&state).join("example.org/alice/cur/2.M1P1.h,S=7");
    assert_eq!(fs::read_to_string(via_link).unwrap(), "goodbye");
    assert!(!new.join(INCOMPLETE_MARKER).exists());
    assert!(
        !new.join("example.org/alice/maildirsize").exists(),
        "rebuilt at the next check"
    );
    assert_eq!(
        fs::read_to_string(old.join(MOVED_MARKER)).unwrap().trim(),
        new.to_str().unwrap()
    );
    assert!(
        old.join("example.org/alice/cur/1.M1P1.h,S=5").exists(),
        "the old tree stays"
    );

    // Moving back: the old tree is marked as left, so it is copied over, not switched to,
    // and what left the store since (a whole domain) does not come back.
    message(&new, "3.M1P1.h,S=3", "new");
    fs::create_dir_all(old.join("gone.example/bob/cur")).unwrap();
    fs::create_dir_all(old.join("lost+found")).unwrap();
    let back = move_to(&state, &old, &Watch::new()).unwrap();
    assert!(matches!(back, Outcome::Copied { .. }), "{back:?}");
    assert!(old.join("example.org/alice/cur/3.M1P1.h,S=3").exists());
    assert!(!old.join(MOVED_MARKER).exists());
    assert!(
        !old.join("gone.example").exists(),
        "a domain gone from the store came back"
    );
    assert!(old.join("lost+found").exists());
    fs::remove_dir_all(base).unwrap();
}

#[test]
fn a_target_holding_mail_is_switched_to_without_a_copy() {
    let base = temp("switch");
    let (state, old, new) = (base.join("state"), base.join("old"), base.join("new"));
    fs::create_dir_all(&state).unwrap();
    root::ensure_link(&state, &old).unwrap();
    message(&old, "1.M1P1.h,S=5", "hello");
    message(&new, "9.M1P1.h,S=5", "other");
    assert_eq!(
        move_to(&state, &new, &Watch::new()).unwrap(),
        Outcome::Switched
    );
    assert_eq!(root::in_force(&state).unwrap(), Some(new.clone()));
    assert!(!new.join("example.org/alice/cur/1.M1P1.h,S=5").exists());
    assert_eq!(
        move_to(&state, &new, &Watch::new()).unwrap(),
        Outcome::AlreadyInForce
    );
    fs::remove_dir_all(base).unwrap();
}

#[test]
fn nested_trees_relative_paths_and_a_second_mover_are_refused() {
    let base = temp("refused");
    let (state, old) = (base.join("state"), base.join("old"));
    fs::create_dir_all(&state).unwrap();
    root::ensure_link(&state, &old).unwrap();
    let watch = Watch::new();
    assert!(matches!(
        move_to(&state, &old.join("inner"), &watch),
        Err(MoveError::InsideSource { .. })
    ));
    assert!(matches!(
        move_to(&state, &base, &watch),
        Err(MoveError::ContainsSource { .. })
    ));
    assert!(matches!(
        move_to(&state, Path::new("relative"), &watch),
        Err(MoveError::NotAbsolute(_))
    ));
    let _held = exclusive(&state.join(MOVE_LOCK)).unwrap();
    assert!(matches!(
        move_to(&state, &base.join("new"), &watch),
        Err(MoveError::AnotherMove)
    ));
    assert_eq!(root::in_force(&state).unwrap(), Some(old));
    fs::remove_dir_all(base).unwrap();
}

#[test]
fn a_cancelled_move_leaves_the_store_and_marks_the_copy_incomplete() {
    let base = temp("cancel");
    let (state, old, new) = (base.join("state"), base.join("old"), base.join("new"));
    fs::create_dir_all(&state).unwrap();
    root::ensure_link(&state, &old).unwrap();
    message(&old, "1.M1P1.h,S=5", "hello");
    let watch = Watch::new();
    watch.cancel.store(true, Ordering::Relaxed);
    assert!(matches!(
        move_to(&state, &new, &watch),
        Err(MoveError::Cancelled(_))
    ));
    assert_eq!(root::in_force(&state).unwrap(), Some(old));
    assert!(new.join(INCOMPLETE_MARKER).exists());
    assert!(!root::holds_mail(&new).unwrap());
    fs::remove_dir_all(base).unwrap();
}

#[test]
fn a_move_by_another_user_than_the_stores_owner_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return; // only root can make a tree that belongs to someone else
    }
    let base = temp("owner");
    let (state, old) = (base.join("state"), base.join("old"));
    fs::create_dir_all(&state).unwrap();
    root::ensure_link(&state, &old).unwrap();
    std::os::unix::fs::chown(&old, Some(65534), Some(65534)).unwrap();
    let refused = move_to(&state, &base.join("new"), &Watch::new());
    assert!(
        matches!(
            refused,
            Err(MoveError::NotOwner {
                owner: 65534,
                me: 0,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(root::in_force(&state).unwrap(), Some(old));
    fs::remove_dir_all(base).unwrap();
}
