//! Turning fuzzer bytes into input for a line protocol. Random bytes rarely spell a command,
//! so, as smtp-proto's fuzzer does, a byte with the high bit set stands for a word of the
//! protocol (`words[b & 0x7f]`, modulo their number) and other bytes for themselves: the
//! fuzzer then reaches the states behind a valid command without having to guess its
//! spelling, and raw bytes (control characters, CR and LF alone) still come through. Bytes
//! that are 8-bit themselves come from the raw mode, which each target also runs.

/// The fuzzer's input as protocol text: `data[0]` picks the mode (even: mapped through
/// `words`, odd: the bytes as they are) and the rest is the text.
pub fn spell(data: &[u8], words: &[&[u8]]) -> Vec<u8> {
    let Some((&mode, rest)) = data.split_first() else {
        return Vec::new();
    };
    if mode & 1 == 1 || words.is_empty() {
        return rest.to_vec();
    }
    let mut out = Vec::with_capacity(rest.len() * 4);
    for &byte in rest {
        if byte & 0x80 == 0 {
            out.push(byte);
        } else {
            out.extend_from_slice(words[usize::from(byte & 0x7f) % words.len()]);
        }
    }
    out
}

/// Sizes to cut input into reads, from a seed byte: 1 to 64 bytes, varying.
pub struct Reads {
    state: u32,
}

impl Reads {
    pub fn new(seed: u8) -> Reads {
        Reads {
            state: u32::from(seed) | 0x100,
        }
    }

    pub fn next_len(&mut self) -> usize {
        // xorshift32: cheap, deterministic for a given input (a crash replays).
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        (self.state % 64) as usize + 1
    }
}

/// A client's bytes as a protocol core takes them: handed out in reads of varying size
/// (`Reads`), with a bound on the core's steps. Every step of a core either takes input or
/// answers, so more steps than a few per byte means one that does neither, forever: the
/// fuzzer's hang, found without waiting for its timeout.
pub struct Feed<'a> {
    rest: &'a [u8],
    /// None: all of it in one read.
    reads: Option<Reads>,
    steps_left: usize,
}

impl<'a> Feed<'a> {
    pub fn new(input: &'a [u8], seed: u8) -> Feed<'a> {
        Feed {
            rest: input,
            reads: Some(Reads::new(seed)),
            steps_left: 64 + input.len().saturating_mul(8),
        }
    }

    /// The input in one read.
    pub fn whole(input: &'a [u8]) -> Feed<'a> {
        Feed {
            reads: None,
            ..Feed::new(input, 0)
        }
    }

    /// The next read, or None once everything was sent.
    pub fn next_read(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let len = self.reads.as_mut().map_or(self.rest.len(), Reads::next_len);
        let (now, later) = self.rest.split_at(len.min(self.rest.len()));
        self.rest = later;
        Some(now)
    }

    /// Counts one step of the core; panics when it is stuck.
    pub fn step(&mut self) {
        self.steps_left = self
            .steps_left
            .checked_sub(1)
            .unwrap_or_else(|| panic!("no progress: the protocol core is stuck"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_replace_high_bytes_only() {
        assert_eq!(
            spell(&[0, b'a', 0x80, 0x81, b'\n'], &[b"X", b"YZ"]),
            b"aXYZ\n"
        );
        assert_eq!(spell(&[1, b'a', 0x80], &[b"X"]), [b'a', 0x80]);
        assert!(spell(&[], &[b"X"]).is_empty());
    }
}
