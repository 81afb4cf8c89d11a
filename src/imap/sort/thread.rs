//! THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §3), and the THREAD response.
//!
//! Cost: O(n log n) in messages plus references. The id table is a hash map; the loop check
//! of step 1 is a root query on a link-cut tree (`linkcut`), not a walk up the parents; the
//! prune of step 4 splices child lists in O(1) each; every traversal is an explicit stack or
//! a loop, never recursion, so a reply chain of any depth is safe. The caps on what a
//! message may reference are in `keys` (`MAX_REFERENCES`, `MAX_REFERENCES_BYTES`).
//!
//! Where RFC 5256 leaves an order open, Dovecot 2.3's is followed (its results are what the
//! integration test compares with): the roots are sorted before the subject gathering of
//! step 5, which takes a dummy root's subject from its oldest child, and sorted again after.

use std::collections::HashMap;

use super::keys::SortKeys;
use super::linkcut::LinkCut;

/// One message to thread, in sequence order.
pub struct Item<'a> {
    /// What the response names it by: its sequence number or UID.
    pub number: u32,
    /// The sent date (RFC 5256 §2.2: INTERNALDATE when the Date: field is missing or bad).
    pub date: i64,
    pub keys: &'a SortKeys,
}

const NONE: usize = usize::MAX;

/// The result: threads of messages, dummies (no message) only at the top with two or more
/// children.
#[derive(Debug, Default)]
pub struct Forest {
    nodes: Vec<Node>,
    roots: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Node {
    /// The item (index) of a message; None for a dummy.
    item: Option<usize>,
    children: Vec<usize>,
}

impl Forest {
    fn key(&self, items: &[Item<'_>], node: usize) -> (i64, usize) {
        match self.nodes[node].item {
            Some(i) => (items[i].date, i),
            // A dummy sorts as its oldest child (children are sorted first).
            None => self.nodes[node]
                .children
                .first()
                .map_or((i64::MIN, 0), |&c| self.key(items, c)),
        }
    }

    /// Sorts every set of siblings by sent date, then sequence (step 6), and the roots.
    fn sort(&mut self, items: &[Item<'_>]) {
        for n in 0..self.nodes.len() {
            if self.nodes[n].children.len() > 1 {
                let mut children = std::mem::take(&mut self.nodes[n].children);
                children.sort_by_key(|&c| match self.nodes[c].item {
                    Some(i) => (items[i].date, i),
                    None => (i64::MIN, c),
                });
                self.nodes[n].children = children;
            }
        }
        let mut roots = std::mem::take(&mut self.roots);
        roots.sort_by_key(|&r| self.key(items, r));
        self.roots = roots;
    }

    /// The THREAD response's data: `(1 2 (3)(4))(5)` (RFC 5256 §4), without `* THREAD `.
    pub fn write(&self, items: &[Item<'_>], out: &mut String) {
        use std::fmt::Write;
        enum Op<'f> {
            List(&'f [usize], bool),
            One(usize),
            Close,
        }
        let number = |n: usize| self.nodes[n].item.map(|i| items[i].number);
        let mut stack = vec![Op::List(&self.roots, true)];
        while let Some(op) = stack.pop() {
            match op {
                Op::Close => out.push(')'),
                Op::List(list, root) => {
                    if let ([only], false) = (list, root) {
                        // One child continues its parent's line: `1 2 3`.
                        if let Some(n) = number(*only) {
                            let _ = write!(out, "{n}");
                        }
                        let children = &self.nodes[*only].children;
                        if !children.is_empty() {
                            out.push(' ');
                            stack.push(Op::List(children, false));
                        }
                    } else {
                        stack.extend(list.iter().rev().map(|&c| Op::One(c)));
                    }
                }
                Op::One(node) => {
                    let children = &self.nodes[node].children;
                    out.push('(');
                    match number(node) {
                        Some(n) if children.is_empty() => {
                            let _ = write!(out, "{n})");
                            continue;
                        }
                        Some(n) => {
                            let _ = write!(out, "{n} ");
                        }
                        None => {}
                    }
                    stack.push(Op::Close);
                    stack.push(Op::List(children, false));
                }
            }
        }
    }

    /// The message numbers of each thread in the order written (for tests).
    #[cfg(test)]
    pub fn flat(&self, items: &[Item<'_>]) -> Vec<Vec<u32>> {
        self.roots
            .iter()
            .map(|&r| {
                let mut out = Vec::new();
                let mut stack = vec![r];
                while let Some(n) = stack.pop() {
                    if let Some(i) = self.nodes[n].item {
                        out.push(items[i].number);
                    }
                    stack.extend(self.nodes[n].children.iter().rev());
                }
                out
            })
            .collect()
    }
}

/// ORDEREDSUBJECT: messages grouped by base subject, each group sorted by sent date; its
/// first message is the parent of the others. Groups are ordered by their first message's
/// sent date (then sequence).
pub fn ordered_subject(items: &[Item<'_>]) -> Forest {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        let (ka, kb) = (items[a].keys, items[b].keys);
        ka.subject
            .text
            .cmp(&kb.subject.text)
            .then(items[a].date.cmp(&items[b].date))
            .then(a.cmp(&b))
    });
    let mut forest = Forest::default();
    let mut start = 0;
    while start < order.len() {
        let subject = &items[order[start]].keys.subject.text;
        let end = order[start..]
            .iter()
            .position(|&i| items[i].keys.subject.text != *subject)
            .map_or(order.len(), |n| start + n);
        let root = forest.nodes.len();
        forest.nodes.push(Node {
            item: Some(order[start]),
            children: (root + 1..root + (end - start)).collect(),
        });
        for &i in &order[start + 1..end] {
            forest.nodes.push(Node {
                item: Some(i),
                children: Vec::new(),
            });
        }
        forest.roots.push(root);
        start = end;
    }
    let mut roots = std::mem::take(&mut forest.roots);
    roots.sort_by_key(|&r| forest.key(items, r));
    forest.roots = roots;
    forest
}

/// The containers of step 1: a message or a dummy (a referenced id with no message), with
/// its parent.
struct Containers<'a> {
    item: Vec<Option<usize>>,
    parent: Vec<usize>,
    by_id: HashMap<&'a str, usize>,
    tree: LinkCut,
}

impl<'a> Containers<'a> {
    fn new(capacity: usize) -> Self {
        Containers {
            item: Vec::with_capacity(capacity),
            parent: Vec::with_capacity(capacity),
            by_id: HashMap::with_capacity(capacity),
            tree: LinkCut::default(),
        }
    }

    fn fresh(&mut self) -> usize {
        self.item.push(None);
        self.parent.push(NONE);
        self.tree.push()
    }

    fn of_id(&mut self, id: &'a str) -> usize {
        match self.by_id.get(id) {
            Some(&c) => c,
            None => {
                let c = self.fresh();
                self.by_id.insert(id, c);
                c
            }
        }
    }

    /// Links `child` under `parent` unless it has a parent already (the first link found
    /// stands) or the link would make a loop.
    fn link(&mut self, parent: usize, child: usize) {
        if parent == child || self.parent[child] != NONE || self.tree.root(parent) == child {
            return;
        }
        self.parent[child] = parent;
        self.tree.link(child, parent);
    }

    fn unlink(&mut self, child: usize) {
        if self.parent[child] != NONE {
            self.parent[child] = NONE;
            self.tree.cut(child);
        }
    }
}

/// References per message, on average over the folder, that one THREAD REFERENCES takes in
/// full; beyond, [`TRIMMED_REFERENCES`] per message.
pub const REFERENCES_BUDGET: usize = 32;
/// The ids per message used when a folder's References exceed the budget.
pub const TRIMMED_REFERENCES: usize = 16;

/// REFERENCES (RFC 5256 §3, steps 1–6).
pub fn references(items: &[Item<'_>]) -> Forest {
    // The id table gets a container per distinct id: when the folder's References together
    // exceed REFERENCES_BUDGET per message, each message's last TRIMMED_REFERENCES only (its
    // nearest ancestors), so one THREAD's memory stays linear in the messages.
    let total: usize = items.iter().map(|item| item.keys.references.len()).sum();
    let per_message = if total > items.len().saturating_mul(REFERENCES_BUDGET) {
        TRIMMED_REFERENCES
    } else {
        usize::MAX
    };
    // Step 1: the id table and the links.
    let mut c = Containers::new(items.len());
    for (i, item) in items.iter().enumerate() {
        let own = match item.keys.message_id.as_deref() {
            Some(id) => match c.by_id.get(id) {
                Some(&existing) if c.item[existing].is_none() => existing,
                // A duplicate Message-ID: the later message gets an id of its own.
                Some(_) => c.fresh(),
                None => c.of_id(id),
            },
            None => c.fresh(),
        };
        c.item[own] = Some(i);
        // 1A: each reference the parent of the next.
        let mut last = None;
        let references = &item.keys.references;
        for reference in &references[references.len().saturating_sub(per_message)..] {
            let next = c.of_id(reference);
            if let Some(previous) = last {
                c.link(previous, next);
            }
            last = Some(next);
        }
        // 1B: the message's own last reference is its parent, replacing another.
        let wanted = last.unwrap_or(NONE);
        if c.parent[own] != wanted {
            c.unlink(own);
        }
        if let Some(parent) = last {
            c.link(parent, own);
        }
    }
    // Steps 2–3: the root set, the id table dropped.
    let count = c.item.len();
    let mut first_child = vec![NONE; count];
    let mut next_sibling = vec![NONE; count];
    let mut roots = Vec::new();
    for node in (0..count).rev() {
        match c.parent[node] {
            NONE => roots.push(node),
            p => {
                next_sibling[node] = first_child[p];
                first_child[p] = node;
            }
        }
    }
    roots.reverse();
    drop(c.by_id);
    // Step 4: dummies below the top are replaced by their children; a post-order walk with
    // the children's lists spliced in O(1) (a linked list: head, tail, next).
    let mut head = vec![NONE; count];
    let mut tail = vec![NONE; count];
    let mut link = vec![NONE; count];
    let mut stack: Vec<(usize, bool)> = roots.iter().rev().map(|&r| (r, false)).collect();
    while let Some((node, children_done)) = stack.pop() {
        if !children_done {
            stack.push((node, true));
            let mut child = first_child[node];
            while child != NONE {
                stack.push((child, false));
                child = next_sibling[child];
            }
            continue;
        }
        let mut child = first_child[node];
        while child != NONE {
            let (h, t) = if c.item[child].is_some() {
                (child, child)
            } else {
                (head[child], tail[child])
            };
            if h != NONE {
                if head[node] == NONE {
                    head[node] = h;
                } else {
                    link[tail[node]] = h;
                }
                tail[node] = t;
            }
            child = next_sibling[child];
        }
    }
    let list = |from: usize| {
        let mut out = Vec::new();
        let mut at = head[from];
        while at != NONE {
            out.push(at);
            if at == tail[from] {
                break;
            }
            at = link[at];
        }
        out
    };
    let mut forest = Forest {
        nodes: (0..count)
            .map(|n| Node {
                item: c.item[n],
                children: Vec::new(),
            })
            .collect(),
        roots: Vec::new(),
    };
    for n in 0..count {
        if c.item[n].is_some() {
            forest.nodes[n].children = list(n);
        }
    }
    for &root in &roots {
        if c.item[root].is_some() {
            forest.roots.push(root);
            continue;
        }
        // A dummy at the top: gone without children, replaced by an only child, else kept.
        match list(root).as_slice() {
            [] => {}
            [only] => forest.roots.push(*only),
            children => {
                forest.nodes[root].children = children.to_vec();
                forest.roots.push(root);
            }
        }
    }
    forest.sort(items);
    merge_subjects(&mut forest, items);
    forest.sort(items);
    forest
}

/// Step 5: threads whose roots have the same base subject are gathered under one.
fn merge_subjects(forest: &mut Forest, items: &[Item<'_>]) {
    let roots = forest.roots.clone();
    let subject_of = |forest: &Forest, r: usize| {
        let message = match forest.nodes[r].item {
            Some(i) => i,
            None => forest.nodes[r]
                .children
                .first()
                .and_then(|&c| forest.nodes[c].item)?,
        };
        Some(&items[message].keys.subject)
    };
    // (A, B) The table: base subject → the root that stands for it; each other root with
    // that subject points (`up`) at the root it met there.
    let mut table: HashMap<&str, usize> = HashMap::new();
    let mut up: Vec<Option<usize>> = vec![None; roots.len()];
    let mut reply = vec![false; roots.len()];
    for (at, &r) in roots.iter().enumerate() {
        let Some(subject) = subject_of(forest, r) else {
            continue;
        };
        if subject.text.is_empty() {
            continue;
        }
        reply[at] = subject.reply;
        let dummy = forest.nodes[r].item.is_none();
        match table.get(subject.text.as_str()) {
            None => {
                table.insert(&subject.text, at);
            }
            Some(&held) => {
                let held_dummy = forest.nodes[roots[held]].item.is_none();
                if !held_dummy && (dummy || reply[held] && !subject.reply) {
                    up[held] = Some(at);
                    table.insert(&subject.text, at);
                } else {
                    up[at] = Some(held);
                }
            }
        }
    }
    // (C) Each root that is not the table's goes to the one that is now.
    let mut slots: Vec<usize> = roots.clone();
    let mut gone = vec![false; roots.len()];
    for at in 0..roots.len() {
        if up[at].is_none() || gone[at] {
            continue;
        }
        let mut top = at;
        while let Some(next) = up[top] {
            top = next;
        }
        let (cur, held) = (slots[at], slots[top]);
        let cur_dummy = forest.nodes[cur].item.is_none();
        let held_dummy = forest.nodes[held].item.is_none();
        if cur_dummy {
            // Both dummies: the children of both become siblings.
            let children = std::mem::take(&mut forest.nodes[cur].children);
            forest.nodes[held].children.extend(children);
            gone[at] = true;
        } else if held_dummy || reply[at] && !reply[top] {
            forest.nodes[held].children.push(cur);
            gone[at] = true;
        } else {
            // Two messages of the same subject: a new dummy holds both.
            let dummy = forest.nodes.len();
            forest.nodes.push(Node {
                item: None,
                children: vec![held, cur],
            });
            slots[top] = dummy;
            gone[at] = true;
        }
    }
    forest.roots = (0..roots.len())
        .filter(|&at| !gone[at])
        .map(|at| slots[at])
        .collect();
}

#[cfg(test)]
mod tests;
