//! A link-cut tree (Sleator–Tarjan) over the REFERENCES containers: it answers "which is the
//! root of this node's tree" in O(log n) amortised while parent links are added and broken.
//! REFERENCES must not add a link that makes a loop (RFC 5256 §3 step 1): linking `child`
//! (a root) under `parent` loops exactly when `parent`'s root is `child`. Walking up the
//! parents instead costs the depth of the tree each time — O(n²) for one long reply chain,
//! the cost of Dovecot's 2026 THREAD CVEs. Everything here is iterative (no recursion).
//!
//! Rooted trees only (no re-rooting), so no lazy reversal is needed: each node's splay tree
//! holds one preferred path ordered by depth, `kids[0]` shallower, `kids[1]` deeper.

const NIL: usize = usize::MAX;

#[derive(Default)]
pub struct LinkCut {
    /// Splay parent, or the path parent when the node is its splay tree's root.
    up: Vec<usize>,
    kids: Vec<[usize; 2]>,
}

impl LinkCut {
    /// Adds a node, alone in its tree; returns its index.
    pub fn push(&mut self) -> usize {
        self.up.push(NIL);
        self.kids.push([NIL, NIL]);
        self.up.len() - 1
    }

    fn is_splay_root(&self, x: usize) -> bool {
        let p = self.up[x];
        p == NIL || (self.kids[p][0] != x && self.kids[p][1] != x)
    }

    fn rotate(&mut self, x: usize) {
        let p = self.up[x];
        let g = self.up[p];
        let side = usize::from(self.kids[p][1] == x);
        if !self.is_splay_root(p) {
            let pside = usize::from(self.kids[g][1] == p);
            self.kids[g][pside] = x;
        }
        self.up[x] = g;
        let moved = self.kids[x][1 - side];
        self.kids[p][side] = moved;
        if moved != NIL {
            self.up[moved] = p;
        }
        self.kids[x][1 - side] = p;
        self.up[p] = x;
    }

    fn splay(&mut self, x: usize) {
        while !self.is_splay_root(x) {
            let p = self.up[x];
            if !self.is_splay_root(p) {
                let g = self.up[p];
                let zigzig = (self.kids[p][0] == x) == (self.kids[g][0] == p);
                self.rotate(if zigzig { p } else { x });
            }
            self.rotate(x);
        }
    }

    /// Makes the path from the root to `x` preferred; `x` ends as its splay tree's root.
    fn access(&mut self, x: usize) {
        let mut last = NIL;
        let mut y = x;
        while y != NIL {
            self.splay(y);
            self.kids[y][1] = last;
            last = y;
            y = self.up[y];
        }
        self.splay(x);
    }

    /// The root of `x`'s tree.
    pub fn root(&mut self, x: usize) -> usize {
        self.access(x);
        let mut r = x;
        while self.kids[r][0] != NIL {
            r = self.kids[r][0];
        }
        // Splaying the found root keeps the next query cheap (the amortised bound).
        self.splay(r);
        r
    }

    /// Makes `child`, which must be the root of its own tree, a child of `parent` (which
    /// must not be in `child`'s tree).
    pub fn link(&mut self, child: usize, parent: usize) {
        self.access(child);
        self.up[child] = parent;
    }

    /// Cuts `x` from its parent (if any).
    pub fn cut(&mut self, x: usize) {
        self.access(x);
        let shallower = self.kids[x][0];
        if shallower != NIL {
            self.up[shallower] = NIL;
            self.kids[x][0] = NIL;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random links and cuts, every root checked against a plain walk up the parents.
    #[test]
    fn agrees_with_walking_up() {
        const N: usize = 300;
        let mut lct = LinkCut::default();
        let mut parent = vec![NIL; N];
        for _ in 0..N {
            lct.push();
        }
        let naive_root = |parent: &[usize], mut x: usize| {
            while parent[x] != NIL {
                x = parent[x];
            }
            x
        };
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % N as u64) as usize
        };
        for _ in 0..20_000 {
            let (a, b) = (next(), next());
            if next() % 3 == 0 {
                lct.cut(a);
                parent[a] = NIL;
            } else if parent[a] == NIL && naive_root(&parent, b) != a {
                lct.link(a, b);
                parent[a] = b;
            }
            let c = next();
            assert_eq!(lct.root(c), naive_root(&parent, c));
        }
    }

    #[test]
    fn a_long_chain_is_cheap_and_right() {
        let mut lct = LinkCut::default();
        let n = 100_000;
        lct.push();
        for i in 1..n {
            lct.push();
            assert_eq!(lct.root(i - 1), 0);
            lct.link(i, i - 1);
        }
        assert_eq!(lct.root(n - 1), 0);
        lct.cut(n / 2);
        assert_eq!(lct.root(n - 1), n / 2);
        assert_eq!(lct.root(n / 2 - 1), 0);
    }
}
