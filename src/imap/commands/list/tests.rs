//! LIST's answers for given folders and subscriptions: RFC 5258 §5's examples (with `.` for
//! its `/`) and what Dovecot 2.3 answers for the same tree (test_imap_list.py compares the two
//! servers on the wire).

use super::*;
use crate::config::model::SpecialUse;

/// Folders from names: a trailing `!` marks a level without a folder of its own.
fn tree(names: &[&str]) -> Vec<FolderInfo> {
    let plain: Vec<&str> = names.iter().map(|n| n.trim_end_matches('!')).collect();
    names
        .iter()
        .zip(&plain)
        .map(|(raw, name)| FolderInfo {
            name: name.to_string(),
            special_use: (*name == "Sent").then_some(SpecialUse::Sent),
            has_children: plain.iter().any(|o| o.starts_with(&format!("{name}."))),
            noselect: raw.ends_with('!'),
        })
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// `LIST` with the wire form given, answered as `name attrs [childinfo]` lines.
fn run(command: &str, all: &[FolderInfo], subscribed: &BTreeSet<String>) -> Vec<String> {
    let request = parse::parse(format!("t {command}\r\n").as_bytes()).unwrap();
    let patterns: Vec<String> = request
        .patterns
        .iter()
        .map(|p| full_pattern(&decoded(&request.reference, false), &decoded(p, false)))
        .collect();
    let shown = Shown::of(&request);
    entries(&patterns, request.selection, &shown, all, subscribed)
        .into_iter()
        .map(|e| {
            let mut line = format!("{} ({})", e.name, e.attributes.join(" "));
            if !e.childinfo.is_empty() {
                line.push_str(&format!(" CHILDINFO {}", e.childinfo.join(" ")));
            }
            if e.status {
                line.push_str(" +STATUS");
            }
            line
        })
        .collect()
}

fn fruit() -> (Vec<FolderInfo>, BTreeSet<String>) {
    // RFC 5258 §5, examples 3 to 5: Fruit/Peach was subscribed, then deleted.
    let all = tree(&[
        "INBOX",
        "Fruit",
        "Fruit.Apple",
        "Fruit.Banana",
        "Tofu",
        "Vegetable",
        "Vegetable.Broccoli",
        "Vegetable.Corn",
    ]);
    let subscribed = set(&[
        "INBOX",
        "Fruit.Banana",
        "Fruit.Peach",
        "Vegetable",
        "Vegetable.Broccoli",
    ]);
    (all, subscribed)
}

#[test]
fn rfc5258_example_5_3_subscribed() {
    let (all, subscribed) = fruit();
    assert_eq!(
        run("LIST (SUBSCRIBED) \"\" \"*\"", &all, &subscribed),
        [
            "INBOX (\\Subscribed)",
            "Fruit.Banana (\\Subscribed)",
            "Fruit.Peach (\\Subscribed \\NonExistent)",
            "Vegetable (\\Subscribed)",
            "Vegetable.Broccoli (\\Subscribed)",
        ]
    );
}

#[test]
fn rfc5258_example_5_4_children() {
    let (all, subscribed) = fruit();
    assert_eq!(
        run("LIST () \"\" \"%\" RETURN (CHILDREN)", &all, &subscribed),
        [
            "INBOX (\\HasNoChildren)",
            "Fruit (\\HasChildren)",
            "Tofu (\\HasNoChildren)",
            "Vegetable (\\HasChildren)",
        ]
    );
    // REMOTE changes nothing here: there are no remote mailboxes (example 5.5).
    assert_eq!(
        run(
            "LIST (REMOTE) \"\" \"%\" RETURN (CHILDREN)",
            &all,
            &subscribed
        ),
        run("LIST () \"\" \"%\" RETURN (CHILDREN)", &all, &subscribed)
    );
}

#[test]
fn rfc5258_example_5_6_return_subscribed() {
    let (all, subscribed) = fruit();
    // Only existing mailboxes: Fruit.Peach is not listed without the selection option.
    assert_eq!(
        run("LIST \"\" \"*\" RETURN (SUBSCRIBED)", &all, &subscribed),
        [
            "INBOX (\\Subscribed)",
            "Fruit ()",
            "Fruit.Apple ()",
            "Fruit.Banana (\\Subscribed)",
            "Tofu ()",
            "Vegetable (\\Subscribed)",
            "Vegetable.Broccoli (\\Subscribed)",
            "Vegetable.Corn ()",
        ]
    );
}

#[test]
fn rfc5258_example_5_7_patterns() {
    let (all, subscribed) = fruit();
    assert_eq!(
        run(
            "LIST \"\" (\"INBOX\" \"Vegetable.*\" \"Tofu\")",
            &all,
            &subscribed
        ),
        [
            "INBOX ()",
            "Tofu ()",
            "Vegetable.Broccoli ()",
            "Vegetable.Corn ()"
        ]
    );
}

#[test]
fn rfc5258_example_5_8_recursivematch() {
    let (all, subscribed) = fruit();
    assert_eq!(
        run(
            "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\" RETURN (CHILDREN)",
            &all,
            &subscribed
        ),
        [
            "INBOX (\\Subscribed \\HasNoChildren)",
            "Fruit (\\HasChildren) CHILDINFO SUBSCRIBED",
            "Vegetable (\\Subscribed \\HasChildren) CHILDINFO SUBSCRIBED",
        ]
    );
    // With `*` every subscribed child is listed itself: Fruit isn't; Vegetable, listed for
    // itself, still says it has a subscribed child (as Dovecot 2.3).
    assert_eq!(
        run(
            "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"*\"",
            &all,
            &subscribed
        ),
        [
            "INBOX (\\Subscribed)",
            "Fruit.Banana (\\Subscribed)",
            "Fruit.Peach (\\Subscribed \\NonExistent)",
            "Vegetable (\\Subscribed) CHILDINFO SUBSCRIBED",
            "Vegetable.Broccoli (\\Subscribed)",
        ]
    );
    // Example 5.9's tree: a parent whose subscribed children all match too gets no CHILDINFO
    // (Baz2, Qux2); one with a subscribed child the pattern misses does (Foo2, Eps2).
    let all = tree(&[
        "INBOX",
        "Foo2",
        "Foo2.Bar1",
        "Foo2.Bar2",
        "Baz2",
        "Baz2.Bar2",
        "Baz2.Bar22",
        "Baz2.Bar222",
        "Eps2",
        "Eps2.Mamba",
        "Qux2!",
        "Qux2.Bar2",
    ]);
    let subscribed = set(&[
        "Foo2.Bar1",
        "Foo2.Bar2",
        "Baz2.Bar2",
        "Baz2.Bar22",
        "Baz2.Bar222",
        "Eps2",
        "Eps2.Mamba",
        "Qux2.Bar2",
    ]);
    assert_eq!(
        run(
            "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"*2\"",
            &all,
            &subscribed
        ),
        [
            "Baz2.Bar2 (\\Subscribed)",
            "Baz2.Bar22 (\\Subscribed)",
            "Baz2.Bar222 (\\Subscribed)",
            "Eps2 (\\Subscribed) CHILDINFO SUBSCRIBED",
            "Foo2 () CHILDINFO SUBSCRIBED",
            "Foo2.Bar2 (\\Subscribed)",
            "Qux2.Bar2 (\\Subscribed)",
        ]
    );
}

#[test]
fn levels_nonexistent_names_and_status() {
    let all = tree(&["INBOX", "Lvl!", "Lvl.Sub", "Sent"]);
    let subscribed = set(&["Sent", "Gone.Deep.Box"]);
    // The basic form: children and roles always, \Noselect for a level, no \Subscribed.
    assert_eq!(
        run("LIST \"\" \"*\"", &all, &subscribed),
        [
            "INBOX (\\HasNoChildren)",
            "Lvl (\\Noselect \\HasChildren)",
            "Lvl.Sub (\\HasNoChildren)",
            "Sent (\\HasNoChildren \\Sent)",
        ]
    );
    // Extended: only what is asked for, \NonExistent for a level.
    assert_eq!(
        run("LIST () \"\" \"%\"", &all, &subscribed),
        ["INBOX ()", "Lvl (\\NonExistent)", "Sent ()"]
    );
    assert_eq!(
        run("LIST (SPECIAL-USE) \"\" \"*\"", &all, &subscribed),
        ["Sent (\\Sent)"]
    );
    assert_eq!(
        run(
            "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\" RETURN (CHILDREN)",
            &all,
            &subscribed
        ),
        [
            "Gone (\\NonExistent \\HasChildren) CHILDINFO SUBSCRIBED",
            "Sent (\\Subscribed \\HasNoChildren)",
        ]
    );
    // STATUS only for folders that exist and meet the criteria.
    assert_eq!(
        run(
            "LIST \"\" \"%\" RETURN (STATUS (MESSAGES))",
            &all,
            &subscribed
        ),
        ["INBOX () +STATUS", "Lvl (\\NonExistent)", "Sent () +STATUS"]
    );
    assert_eq!(
        run(
            "LIST (SUBSCRIBED) \"\" \"*\" RETURN (STATUS (MESSAGES))",
            &all,
            &subscribed
        ),
        [
            "Gone.Deep.Box (\\Subscribed \\NonExistent)",
            "Sent (\\Subscribed) +STATUS"
        ]
    );
    // Both selection options: both criteria.
    assert_eq!(
        run(
            "LIST (SUBSCRIBED SPECIAL-USE) \"\" \"*\"",
            &all,
            &subscribed
        ),
        ["Sent (\\Subscribed \\Sent)"]
    );
    // A reference, and several patterns under it.
    assert_eq!(
        run("LIST \"Lvl\" (\"%\" \"Nope\")", &all, &subscribed),
        ["Lvl.Sub ()"]
    );
}

/// Issue 17, defect 4 (the exchange of Dovecot's imaptest `lsub` script).
#[test]
fn lsub_returns_unsubscribed_parents_as_noselect() {
    let subscribed: BTreeSet<String> = ["p.test", "p.test2.test", "p.test3.test3", "INBOX"]
        .map(String::from)
        .into();
    let listed = lsub_names("p.%", &subscribed);
    let expected = [("p.test", false), ("p.test2", true), ("p.test3", true)]
        .map(|(name, noselect)| (name.to_string(), noselect));
    assert_eq!(listed, expected);
    // `*` matches the names themselves: no parents.
    let all = lsub_names("*", &subscribed);
    assert!(all.iter().all(|(_, noselect)| !noselect), "{all:?}");
    assert_eq!(all[0].0, "INBOX");
    // A subscribed parent is listed as itself.
    let mut with_parent = subscribed.clone();
    with_parent.insert("p.test2".into());
    assert!(lsub_names("p.%", &with_parent).contains(&("p.test2".to_string(), false)));
    assert!(lsub_names("", &subscribed).is_empty());
}
