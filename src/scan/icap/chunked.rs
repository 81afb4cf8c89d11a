//! The chunked body of an ICAP response (sans-I/O).

use super::IcapError;

/// Decodes a chunked body (RFC 3507 §4.5; chunk extensions such as `ieof` ignored) as its
/// bytes arrive, never holding more than `limit` body bytes. Each complete chunk is taken off
/// the front of the buffer it is fed, so a large body costs one pass.
#[derive(Debug)]
pub struct Dechunker {
    body: Vec<u8>,
    limit: usize,
}

impl Dechunker {
    pub fn new(limit: usize) -> Dechunker {
        Dechunker {
            body: Vec::new(),
            limit,
        }
    }

    /// Takes the complete chunks at the start of `buffer`: `Ok(true)` once the last chunk
    /// (size 0) was read, `Ok(false)` when more bytes are needed.
    pub fn feed(&mut self, buffer: &mut Vec<u8>) -> Result<bool, IcapError> {
        let mut at = 0usize;
        let done = loop {
            let (used, size) = match httparse::parse_chunk_size(&buffer[at..]) {
                Ok(httparse::Status::Complete(found)) => found,
                Ok(httparse::Status::Partial) => break false,
                Err(_) => return Err(IcapError::Body("a bad chunk size line".into())),
            };
            if size == 0 {
                at += used;
                break true;
            }
            let size = usize::try_from(size)
                .ok()
                .filter(|size| self.body.len().saturating_add(*size) <= self.limit)
                .ok_or_else(|| IcapError::Body(format!("more than {} bytes", self.limit)))?;
            let start = at + used;
            let end = start
                .checked_add(size)
                .ok_or_else(|| IcapError::Body("a chunk too large".into()))?;
            if buffer.len() < end.saturating_add(2) {
                break false;
            }
            if &buffer[end..end + 2] != b"\r\n" {
                return Err(IcapError::Body("a chunk not ended by CRLF".into()));
            }
            self.body.extend_from_slice(&buffer[start..end]);
            at = end + 2;
        };
        buffer.drain(..at);
        Ok(done)
    }

    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
}

/// A whole chunked body at the start of `buffer`: `Ok(None)` when more bytes are needed.
pub fn dechunk(buffer: &[u8], limit: usize) -> Result<Option<Vec<u8>>, IcapError> {
    let mut dechunker = Dechunker::new(limit);
    let mut buffer = buffer.to_vec();
    Ok(dechunker.feed(&mut buffer)?.then(|| dechunker.into_body()))
}
