//! What the session has read from the client and not yet handed on: one buffer of
//! [`READ_BUFFER`] bytes (the input path, `input`, takes from it step by step).

use std::ops::Range;

/// Bytes read from the client at a time.
pub const READ_BUFFER: usize = 16 * 1024;

/// Read bytes not yet taken by the guard.
pub struct InputBuffer {
    pub(super) buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Default for InputBuffer {
    fn default() -> Self {
        InputBuffer {
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }
}

impl InputBuffer {
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` pending bytes as taken; their place in the buffer.
    pub(super) fn take(&mut self, n: usize) -> Range<usize> {
        let from = self.start;
        self.start = (self.start + n).min(self.end);
        from..self.start
    }

    /// Where to read into: the whole buffer, once everything read before was taken.
    pub fn space(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were read into `space()`.
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Forgets what was read (STARTTLS: nothing pipelined in plaintext survives).
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

/// How far [`Session::supply`] got.
pub enum Supplied {
    /// imap-next has new bytes to parse.
    Parser,
    /// Everything read was taken: read more.
    NeedInput,
    /// The session is over (an answer that closes it is queued).
    Over,
}
