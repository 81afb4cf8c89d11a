//! COMPRESS=DEFLATE (RFC 4978): raw DEFLATE (RFC 1951, no zlib header) in both directions,
//! under the protocol and over TLS. Sans-I/O: the connection hands in what it read and what it
//! wants to send.
//!
//! Output is compressed with a *full* flush at every flush of the connection (after each
//! command's replies, or mid-way through a long one): the client gets every reply at once, and
//! the compressor's dictionary starts empty again, so what one reply compresses to never
//! depends on an earlier one — a message an attacker mailed in cannot be used to guess, from
//! compressed sizes, what else the session sent (CRIME-like). RFC 4978 §4 asks for at least a
//! sync flush; the full flush costs a little ratio on small replies. Since nothing is carried
//! across a full flush, each flush uses a compressor of its own, dropped after it: its ≈ 300 KiB
//! of tables exist only while output is being compressed, not for every idle session. (The
//! client's stream goes on across compressors: raw DEFLATE is a sequence of blocks, and a full
//! flush ends on a block boundary without a final block.)
//!
//! Input is inflated into the caller's buffer only: a small compressed input that inflates to
//! much is handed on a buffer at a time, never held (a "zip bomb" costs the client its own
//! bandwidth, not our memory). Compressed bytes not yet inflated wait here, at most one read.

use std::io;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// zlib's default: Dovecot's too (`imap_compress_deflate_level = 6`).
const LEVEL: u32 = 6;

pub struct Deflate {
    decompress: Decompress,
    /// Compressed input not inflated yet: `input[start..]`.
    input: Vec<u8>,
    start: usize,
    /// The client ended its DEFLATE stream (a final block): nothing more can come.
    ended: bool,
}

impl Deflate {
    /// Compression from now on; `already_read` is what the client sent after the COMPRESS
    /// command and was read with it (compressed, as for Dovecot).
    pub fn new(already_read: &[u8]) -> Deflate {
        Deflate {
            decompress: Decompress::new(false),
            input: already_read.to_vec(),
            start: 0,
            ended: false,
        }
    }

    /// Appends `plain`, compressed and fully flushed, to `out`.
    pub fn deflate(&mut self, plain: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let mut compress = Compress::new(Compression::new(LEVEL), false);
        let mut consumed = 0usize;
        loop {
            // Room for incompressible data (DEFLATE's stored blocks add 5 bytes per 64 KiB)
            // and the flush marker.
            out.reserve(plain.len() - consumed + plain.len() / 1024 + 64);
            let before = compress.total_in();
            compress
                .compress_vec(&plain[consumed..], out, FlushCompress::Full)
                .map_err(io::Error::other)?;
            consumed += usize::try_from(compress.total_in() - before).map_err(io::Error::other)?;
            // The flush is complete once all input is in and the output did not fill up.
            if consumed >= plain.len() && out.len() < out.capacity() {
                return Ok(());
            }
        }
    }

    /// Compressed bytes just read from the client.
    pub fn take_input(&mut self, bytes: &[u8]) {
        if self.start == self.input.len() {
            self.input.clear();
            self.start = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    /// Inflates waiting input into `space`; how many bytes it gave (0: it needs more input).
    /// Corrupt input, or data after the client's final block, is an error.
    pub fn inflate(&mut self, space: &mut [u8]) -> io::Result<usize> {
        if self.start == self.input.len() || space.is_empty() {
            return Ok(0);
        }
        if self.ended {
            return Err(corrupt("data after the end of the DEFLATE stream"));
        }
        let (in_before, out_before) = (self.decompress.total_in(), self.decompress.total_out());
        let status = self
            .decompress
            .decompress(&self.input[self.start..], space, FlushDecompress::None)
            .map_err(|err| corrupt(&err.to_string()))?;
        let used =
            usize::try_from(self.decompress.total_in() - in_before).map_err(io::Error::other)?;
        let made =
            usize::try_from(self.decompress.total_out() - out_before).map_err(io::Error::other)?;
        self.start = (self.start + used).min(self.input.len());
        if status == Status::StreamEnd {
            self.ended = true;
        }
        Ok(made)
    }
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("COMPRESS: bad DEFLATE data from the client: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client's side: flate2 as an RFC 4978 client would use zlib.
    fn client_compress(plain: &[u8]) -> Vec<u8> {
        let mut c = Compress::new(Compression::default(), false);
        let mut out = Vec::with_capacity(plain.len() + 64);
        c.compress_vec(plain, &mut out, FlushCompress::Sync)
            .expect("compress");
        out
    }

    fn inflate_all(d: &mut Deflate, space: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = vec![0u8; space];
        loop {
            let n = d.inflate(&mut buf).expect("inflate");
            if n == 0 {
                return got;
            }
            got.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn output_inflates_to_what_was_sent_reply_by_reply() {
        let mut d = Deflate::new(b"");
        let mut client = Decompress::new(false);
        for reply in [
            &b"* 1 FETCH (FLAGS (\\Seen))\r\na OK done\r\n"[..],
            &vec![b'x'; 300_000],
            b"b OK\r\n",
        ] {
            let mut wire = Vec::new();
            d.deflate(reply, &mut wire).expect("deflate");
            // Each flush stands alone: the client inflates it all without more input.
            let mut out = Vec::with_capacity(reply.len() + 16);
            client
                .decompress_vec(&wire, &mut out, FlushDecompress::Sync)
                .expect("client inflate");
            assert_eq!(out, reply);
        }
    }

    #[test]
    fn input_inflates_in_pieces_into_small_buffers() {
        let plain: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("a{i} NOOP\r\n").into_bytes())
            .collect();
        let wire = client_compress(&plain);
        // Split so the first piece came with the COMPRESS command's read.
        let (first, rest) = wire.split_at(7);
        let mut d = Deflate::new(first);
        let mut got = inflate_all(&mut d, 100);
        for chunk in rest.chunks(13) {
            d.take_input(chunk);
            got.extend(inflate_all(&mut d, 100));
        }
        assert_eq!(got, plain);
    }

    #[test]
    fn a_bomb_is_handed_on_a_buffer_at_a_time() {
        let wire = client_compress(&vec![b'A'; 20_000_000]);
        assert!(wire.len() < 100_000, "{}", wire.len());
        let mut d = Deflate::new(&wire);
        let mut buf = [0u8; 4096];
        assert_eq!(d.inflate(&mut buf).expect("inflate"), 4096);
        // What waits is at most the compressed input, never the inflated data.
        assert!(d.input.len() <= wire.len());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut d = Deflate::new(&[0xff, 0xff, 0xff, 0xff, 0x00, 0x12]);
        let mut buf = [0u8; 64];
        assert_eq!(
            d.inflate(&mut buf).expect_err("garbage").kind(),
            io::ErrorKind::InvalidData
        );
    }
}
