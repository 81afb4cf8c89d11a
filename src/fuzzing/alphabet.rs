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
