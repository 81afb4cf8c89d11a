use super::*;
use crate::imap::sort::subject::base_subject;

fn keys(id: &str, refs: &[&str], subject: &str) -> SortKeys {
    SortKeys {
        subject: base_subject(subject),
        message_id: (!id.is_empty()).then(|| id.to_string()),
        references: refs.iter().map(|r| r.to_string()).collect(),
        ..SortKeys::default()
    }
}

/// Items numbered 1.., dated by position unless given.
fn items<'a>(keys: &'a [SortKeys], dates: &[i64]) -> Vec<Item<'a>> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| Item {
            number: i as u32 + 1,
            date: dates.get(i).copied().unwrap_or(i as i64 * 100),
            keys: k,
        })
        .collect()
}

fn written(forest: &Forest, items: &[Item<'_>]) -> String {
    let mut out = String::new();
    forest.write(items, &mut out);
    out
}

#[test]
fn references_links_chains_and_keeps_the_first_parent() {
    let k = [
        keys("a@x", &[], "Hello"),
        keys("b@x", &["a@x"], "Re: Hello"),
        keys("c@x", &["a@x", "b@x"], "Re: Hello"),
        // Claims b's parent is z: b keeps a (the first link stands).
        keys("d@x", &["z@x", "b@x"], "Re: Hello"),
        keys("e@x", &["a@x"], "Re: Hello"),
    ];
    let it = items(&k, &[]);
    assert_eq!(written(&references(&it), &it), "(1 (2 (3)(4))(5))");
}

#[test]
fn dummies_are_pruned_and_promoted() {
    let k = [
        // Two replies to a missing message: a dummy root with two children stays.
        keys("b@x", &["gone@x"], "one"),
        keys("c@x", &["gone@x"], "two"),
        // A reply to a missing message alone: promoted to the top.
        keys("d@x", &["lost@x"], "three"),
        // A missing message in the middle of a chain: its child moves up to its level.
        keys("e@x", &[], "four"),
        keys("f@x", &["e@x", "mid@x"], "Re: four"),
    ];
    let it = items(&k, &[]);
    assert_eq!(written(&references(&it), &it), "((1)(2))(3)(4 5)");
}

#[test]
fn loops_are_refused() {
    let k = [
        keys("a@x", &["b@x"], "loop"),
        keys("b@x", &["a@x"], "loop"),
        keys("c@x", &["c@x"], "self"),
        keys("d@x", &["e@x", "d@x", "e@x"], "round"),
    ];
    let it = items(&k, &[]);
    // a is b's child (a's References); b → a would close a loop: refused. c's reference to
    // itself is ignored; d → e → d is cut where it would loop.
    let forest = references(&it);
    assert_eq!(written(&forest, &it), "(2 1)(3)(4)");
}

#[test]
fn own_references_break_a_parent_given_by_others() {
    let k = [
        keys("c@x", &["a@x", "b@x"], "x"),
        // b says its parent is q, not a: that wins.
        keys("b@x", &["q@x"], "y"),
        keys("a@x", &[], "z"),
    ];
    let it = items(&k, &[]);
    assert_eq!(written(&references(&it), &it), "(2 1)(3)");
}

#[test]
fn subjects_merge_and_siblings_sort_by_date() {
    let k = [
        keys("a@x", &[], "Topic"),
        keys("b@x", &[], "Re: Topic"),
        keys("c@x", &[], "Other"),
        keys("d@x", &[], "Other"),
        keys("e@x", &[], "[list] Fwd: Other"),
        keys("f@x", &[], ""),
    ];
    // c is dated after d.
    let it = items(&k, &[100, 200, 500, 400, 600, 50]);
    assert_eq!(written(&references(&it), &it), "(6)(1 2)((4)(3)(5))");
}

#[test]
fn ties_in_date_go_by_sequence() {
    let k = [
        keys("a@x", &[], "s"),
        keys("b@x", &["a@x"], "Re: s"),
        keys("c@x", &["a@x"], "Re: s"),
        keys("d@x", &[], "t"),
    ];
    let it = items(&k, &[10, 10, 10, 10]);
    assert_eq!(written(&references(&it), &it), "(1 (2)(3))(4)");
}

#[test]
fn duplicate_message_ids_get_their_own() {
    let k = [
        keys("a@x", &[], "one"),
        keys("a@x", &[], "two"),
        keys("c@x", &["a@x"], "Re: one"),
    ];
    let it = items(&k, &[]);
    assert_eq!(written(&references(&it), &it), "(1 3)(2)");
}

#[test]
fn ordered_subject_groups_by_base_subject() {
    let k = [
        keys("", &[], "b"),
        keys("", &[], "Re: a"),
        keys("", &[], "a"),
        keys("", &[], "Re: b"),
        keys("", &[], "A"),
        keys("", &[], "c"),
    ];
    let it = items(&k, &[10, 20, 30, 40, 25, 5]);
    assert_eq!(written(&ordered_subject(&it), &it), "(6)(1 4)(2 (5)(3))");
}

#[test]
fn the_writer_nests_only_where_threads_branch() {
    let k = [
        keys("a@x", &[], "r"),
        keys("b@x", &["a@x"], "r"),
        keys("c@x", &["a@x", "b@x"], "r"),
        keys("d@x", &["a@x", "b@x"], "r"),
        keys("e@x", &["a@x", "b@x", "d@x"], "r"),
    ];
    let it = items(&k, &[]);
    assert_eq!(written(&references(&it), &it), "(1 2 (3)(4 5))");
}

/// 100,000 messages in one reply chain (each with its full References list capped, so the
/// chain is built from the parents' links), and a 100,000-message folder of unrelated
/// messages: right, without recursion, and quick.
#[test]
fn large_folders() {
    const N: usize = 100_000;
    let chain: Vec<SortKeys> = (0..N)
        .map(|i| {
            let refs: Vec<String> = (i.saturating_sub(3)..i)
                .map(|j| format!("m{j}@x"))
                .collect();
            SortKeys {
                subject: base_subject(if i == 0 { "deep" } else { "Re: deep" }),
                message_id: Some(format!("m{i}@x")),
                references: refs,
                ..SortKeys::default()
            }
        })
        .collect();
    let it = items(&chain, &[]);
    let started = std::time::Instant::now();
    let forest = references(&it);
    let mut out = String::new();
    forest.write(&it, &mut out);
    println!(
        "REFERENCES on a 100,000-message chain: {:?}",
        started.elapsed()
    );
    let expected: Vec<u32> = (1..=N as u32).collect();
    assert_eq!(forest.flat(&it), vec![expected.clone()]);
    assert!(out.starts_with("(1 2 3 ") && out.ends_with(" 100000)"));
    assert_eq!(out.matches('(').count(), 1);

    // The same chain, in reverse arrival order (every message first seen as a dummy).
    let reversed: Vec<SortKeys> = chain.iter().rev().cloned().collect();
    let it = items(&reversed, &[]);
    let started = std::time::Instant::now();
    let forest = references(&it);
    println!("REFERENCES on the chain reversed: {:?}", started.elapsed());
    let expected: Vec<u32> = (1..=N as u32).rev().collect();
    assert_eq!(forest.flat(&it), vec![expected]);

    let flat: Vec<SortKeys> = (0..N)
        .map(|i| SortKeys {
            subject: base_subject(&format!("subject {i}")),
            message_id: Some(format!("f{i}@x")),
            ..SortKeys::default()
        })
        .collect();
    let it = items(&flat, &[]);
    let started = std::time::Instant::now();
    let forest = references(&it);
    println!(
        "REFERENCES on 100,000 unrelated messages: {:?}",
        started.elapsed()
    );
    let started = std::time::Instant::now();
    let ordered = ordered_subject(&it);
    println!(
        "ORDEREDSUBJECT on 100,000 unrelated messages: {:?}",
        started.elapsed()
    );
    assert_eq!(forest.flat(&it).len(), N);
    assert_eq!(ordered.flat(&it).len(), N);
    assert_eq!(forest.flat(&it)[N - 1], vec![N as u32]);
}

/// Over the budget, each message's nearest TRIMMED_REFERENCES ancestors still thread it under
/// its parent; the id table holds no more than that many ids per message.
#[test]
fn references_over_the_budget_keep_the_nearest_ancestors() {
    // Each message names 200 unrelated ids, then its true parent last.
    let mut all = vec![keys("m0@x", &[], "topic")];
    for i in 1..50 {
        let mut refs: Vec<String> = (0..200).map(|j| format!("noise{i}-{j}@x")).collect();
        refs.push(format!("m{}@x", i - 1));
        let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
        all.push(keys(&format!("m{i}@x"), &refs, "Re: topic"));
    }
    let it = items(&all, &[]);
    assert!(all.iter().map(|k| k.references.len()).sum::<usize>() > all.len() * REFERENCES_BUDGET);
    let forest = references(&it);
    let expected: Vec<u32> = (1..=50).collect();
    assert_eq!(forest.flat(&it), vec![expected]);
}
