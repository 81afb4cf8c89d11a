//! One BDAT chunk (RFC 3030), sans-I/O and bounded. smtp-proto's `BdatReceiver` counts the
//! declared octets (it takes exactly that many and never more); here they get the same line-end
//! normalisation as DATA (bare CR and bare LF become CRLF, also when a CR ends one chunk and
//! the next begins with LF) and the message size bound. No dot-stuffing in BDAT.

use smtp_proto::request::receiver::BdatReceiver;

use super::data::Bounded;
use crate::mailtext::LineEnds;

/// How a chunk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkEnd {
    /// All its octets are read and stored.
    Complete,
    /// The message passed the limit while this chunk was read (its octets were still read).
    TooBig,
}

/// Reads the octets of one BDAT chunk.
pub struct ChunkReceiver {
    octets: BdatReceiver,
    too_big: bool,
}

impl ChunkReceiver {
    pub fn new(size: usize, last: bool) -> ChunkReceiver {
        ChunkReceiver {
            octets: BdatReceiver::new(size, last),
            too_big: false,
        }
    }

    /// `BDAT … LAST`.
    pub fn is_last(&self) -> bool {
        self.octets.is_last
    }

    /// Reads chunk octets from `input` into `body` (through the message's `line_ends`, at most
    /// `limit` bytes in all). Returns how many bytes were consumed and, once the chunk is
    /// complete, how it ended; after the last chunk any CR still pending is written out.
    pub fn ingest(
        &mut self,
        input: &[u8],
        line_ends: &mut LineEnds,
        body: &mut Vec<u8>,
        limit: usize,
    ) -> (usize, Option<ChunkEnd>) {
        let mut bytes = input.iter();
        // The receiver copies the chunk's share of this input; a read's worth at most.
        let mut octets = Vec::new();
        let done = self.octets.ingest(&mut bytes, &mut octets);
        let consumed = input.len() - bytes.as_slice().len();
        let mut sink = Bounded {
            body,
            limit,
            too_big: &mut self.too_big,
        };
        let mut put = |piece: &[u8]| sink.put(piece);
        line_ends.push(&octets, &mut put);
        if !done {
            return (consumed, None);
        }
        if self.octets.is_last {
            line_ends.finish(&mut put);
        }
        let end = if self.too_big {
            ChunkEnd::TooBig
        } else {
            ChunkEnd::Complete
        };
        (consumed, Some(end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds chunks (size, last, octets + what follows) in pieces of `piece` bytes.
    fn chunks(parts: &[(&[u8], bool)], piece: usize, limit: usize) -> (Vec<u8>, Vec<ChunkEnd>) {
        let mut body = Vec::new();
        let mut line_ends = LineEnds::default();
        let mut ends = Vec::new();
        for (octets, last) in parts {
            let mut receiver = ChunkReceiver::new(octets.len(), *last);
            let mut offset = 0usize;
            loop {
                let end = offset.saturating_add(piece).min(octets.len());
                let (consumed, done) =
                    receiver.ingest(&octets[offset..end], &mut line_ends, &mut body, limit);
                offset += consumed;
                if let Some(done) = done {
                    assert_eq!(offset, octets.len());
                    ends.push(done);
                    break;
                }
            }
        }
        (body, ends)
    }

    #[test]
    fn takes_exactly_the_declared_octets() {
        let mut receiver = ChunkReceiver::new(5, false);
        let mut body = Vec::new();
        let (consumed, end) =
            receiver.ingest(b"helloNOOP\r\n", &mut LineEnds::default(), &mut body, 100);
        assert_eq!((consumed, end), (5, Some(ChunkEnd::Complete)));
        assert_eq!(body, b"hello");
    }

    #[test]
    fn line_ends_are_normalised_across_chunks() {
        let parts: [(&[u8], bool); 3] = [(b"a\r", false), (b"\nb\r", false), (b"c\n\r", true)];
        for piece in [1, 2, 100] {
            let (body, ends) = chunks(&parts, piece, 100);
            assert_eq!(body, b"a\r\nb\r\nc\r\n\r\n", "pieces of {piece}");
            assert_eq!(ends, [ChunkEnd::Complete; 3]);
        }
    }

    #[test]
    fn the_limit_holds_after_normalisation() {
        // Ten bare LFs are twenty octets once normalised: limit 19 is passed, 20 is not.
        let parts: [(&[u8], bool); 1] = [(b"\n\n\n\n\n\n\n\n\n\n", true)];
        assert_eq!(chunks(&parts, 3, 20).1, [ChunkEnd::Complete]);
        let (body, ends) = chunks(&parts, 3, 19);
        assert_eq!(ends, [ChunkEnd::TooBig]);
        assert!(body.is_empty());
    }
}
