//! The MIME tree of a message: byte ranges of every part's header and body.
//!
//! This is a line-based splitter modelled on Dovecot's message parser rather than
//! mail-parser, because IMAP needs exact raw offsets and Dovecot's boundary rules:
//! a boundary line is `--` + boundary at the start of a line (anything may follow);
//! when several active boundaries match, the longest wins; the line break before a
//! boundary line belongs to the boundary, not to the part before it; an outer boundary
//! also ends every inner part. Every byte is looked at a bounded number of times, and
//! nesting stops at [`MAX_DEPTH`], below which parts are opaque.

use std::ops::Range;

use super::header::{is_empty_line, line_end, Header};
use super::params::{content_type, MimeValue};

/// Deepest nesting of multipart and message/rfc822 parts that is parsed.
pub(crate) const MAX_DEPTH: usize = 32;
/// Most parts in one message, the message itself included. From the part that reaches it on,
/// no boundary line is recognised: that part runs to the end of the message, as does every
/// multipart around it (as Dovecot 2.3 answers for sibling parts past its own cap). Without
/// this, a 25 MiB message of empty sibling parts (`--b` lines) was 3.7 million parts and
/// about 2.8 GB of memory to answer BODYSTRUCTURE.
const MAX_PARTS: usize = 10_000;

/// One MIME entity: a message or a body part.
#[derive(Debug)]
pub(crate) struct Entity {
    /// The header block, including the empty line that ends it (if there is one).
    pub header: Range<usize>,
    /// The body, without the line break before the next boundary.
    pub body: Range<usize>,
    /// Content-Type, or the default for this position (text/plain; message/rfc822 in a digest).
    pub ctype: MimeValue,
    pub kind: Kind,
}

#[derive(Debug)]
pub(crate) enum Kind {
    /// A leaf part.
    Single,
    /// multipart/*: at least one child (an empty one when no boundary was found).
    Multipart(Vec<Entity>),
    /// message/rfc822: the encapsulated message.
    Message(Box<Entity>),
    /// A multipart or message too deeply nested to parse; reported as text/plain.
    Opaque,
}

/// Parses `raw` into its entity tree.
pub(crate) fn parse(raw: &[u8]) -> Entity {
    let mut parser = Parser {
        raw,
        parts: 0,
        bounds: Vec::new(),
    };
    parser.entity(0, 0, false).0
}

/// Where a boundary line was found.
#[derive(Clone, Copy)]
struct Hit {
    /// Start of the line break before the boundary line (end of the preceding part).
    before: usize,
    /// Start of the line after the boundary line.
    after: usize,
    /// Index of the matched boundary in the stack.
    index: usize,
    /// `--boundary--`.
    close: bool,
}

struct Parser<'a> {
    raw: &'a [u8],
    parts: usize,
    /// Active boundaries, outermost first.
    bounds: Vec<Vec<u8>>,
}

impl Parser<'_> {
    /// Parses the entity starting at `start`; returns it and the boundary that ended it.
    fn entity(&mut self, start: usize, depth: usize, in_digest: bool) -> (Entity, Option<Hit>) {
        self.parts += 1;
        let (header, hit) = self.header(start);
        let fields = Header::parse(self.raw, header.clone());
        let explicit = fields.first(self.raw, "Content-Type");
        let ctype = match explicit {
            Some(v) => content_type(v),
            None if in_digest => MimeValue {
                kind: b"message".to_vec(),
                subtype: b"rfc822".to_vec(),
                params: Vec::new(),
            },
            None => MimeValue {
                kind: b"text".to_vec(),
                subtype: b"plain".to_vec(),
                params: Vec::new(),
            },
        };
        let body_start = header.end;
        let mut entity = Entity {
            header,
            body: body_start..body_start,
            ctype,
            kind: Kind::Single,
        };
        if hit.is_some() {
            return (entity, hit);
        }
        let nested = entity.ctype.kind.eq_ignore_ascii_case(b"multipart")
            || entity.ctype.is("message", "rfc822");
        if nested && (depth >= MAX_DEPTH || self.parts >= MAX_PARTS) {
            entity.kind = Kind::Opaque;
        }
        let hit = match entity.kind {
            Kind::Opaque => self.scan(body_start),
            _ if entity.ctype.kind.eq_ignore_ascii_case(b"multipart") => {
                let digest = entity.ctype.subtype.eq_ignore_ascii_case(b"digest");
                let boundary = entity.ctype.param("boundary").map(<[u8]>::to_vec);
                let (children, hit) = self.multipart(body_start, boundary, depth, digest);
                entity.kind = Kind::Multipart(children);
                hit
            }
            _ if entity.ctype.is("message", "rfc822") => {
                let (child, hit) = self.entity(body_start, depth + 1, false);
                entity.kind = Kind::Message(Box::new(child));
                hit
            }
            _ => self.scan(body_start),
        };
        entity.body.end = hit.map_or(self.raw.len(), |h| h.before);
        (entity, hit)
    }

    /// The header block at `start`: up to and including the first empty line, or up to a
    /// boundary line (returned), or to the end of the data.
    fn header(&self, start: usize) -> (Range<usize>, Option<Hit>) {
        let end = self.raw.len();
        let mut p = start;
        while p < end {
            if let Some(hit) = self.boundary_at(p, start) {
                // As in Dovecot, the header then excludes its last line break, but the
                // enclosing part (e.g. a message/rfc822 holding it) keeps it: it ends at
                // the boundary line itself.
                return (start..hit.before, Some(Hit { before: p, ..hit }));
            }
            let next = line_end(self.raw, p, end);
            if is_empty_line(&self.raw[p..next]) {
                return (start..next, None);
            }
            p = next;
        }
        (start..end, None)
    }

    /// The children of a multipart whose body starts at `start`.
    fn multipart(
        &mut self,
        start: usize,
        boundary: Option<Vec<u8>>,
        depth: usize,
        digest: bool,
    ) -> (Vec<Entity>, Option<Hit>) {
        let mut children = Vec::new();
        let own = match boundary {
            Some(b) if !b.is_empty() => {
                self.bounds.push(b);
                Some(self.bounds.len() - 1)
            }
            _ => None,
        };
        let mut hit = self.scan(start);
        while let (Some(h), Some(me)) = (hit, own) {
            if h.index != me {
                break;
            }
            if h.close {
                // The epilogue runs until an outer boundary or the end.
                self.bounds.truncate(me);
                hit = self.scan(h.after);
                break;
            }
            let (child, next) = self.entity(h.after, depth + 1, digest);
            children.push(child);
            hit = next;
        }
        if let Some(me) = own {
            self.bounds.truncate(me);
        }
        if children.is_empty() {
            // Dovecot shows a multipart without parts as one empty text/plain part.
            let at = hit.map_or(self.raw.len(), |h| h.before).max(start);
            let ctype = MimeValue {
                kind: b"text".to_vec(),
                subtype: b"plain".to_vec(),
                params: Vec::new(),
            };
            children.push(Entity {
                header: at..at,
                body: at..at,
                ctype,
                kind: Kind::Single,
            });
        }
        (children, hit)
    }

    /// The next boundary line at or after `start`, if any.
    fn scan(&self, start: usize) -> Option<Hit> {
        if self.bounds.is_empty() || self.parts >= MAX_PARTS {
            return None;
        }
        let end = self.raw.len();
        let mut p = start;
        while p < end {
            if let Some(hit) = self.boundary_at(p, start) {
                return Some(hit);
            }
            p = line_end(self.raw, p, end);
        }
        None
    }

    /// Whether the line at `p` is a boundary line; `floor` is where the current entity
    /// began (the line break before `p` is only taken if it lies within the entity).
    fn boundary_at(&self, p: usize, floor: usize) -> Option<Hit> {
        if self.parts >= MAX_PARTS {
            return None;
        }
        let rest = self.raw.get(p..)?.strip_prefix(b"--")?;
        let line = &rest[..rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len())];
        let mut best: Option<usize> = None;
        for (i, b) in self.bounds.iter().enumerate().rev() {
            if line.starts_with(b) && best.is_none_or(|j| self.bounds[j].len() < b.len()) {
                best = Some(i);
            }
        }
        let index = best?;
        let close = line[self.bounds[index].len()..].starts_with(b"--");
        let mut before = p;
        if before > floor && self.raw[before - 1] == b'\n' {
            before -= 1;
            if before > floor && self.raw[before - 1] == b'\r' {
                before -= 1;
            }
        }
        Some(Hit {
            before,
            after: line_end(self.raw, p, self.raw.len()),
            index,
            close,
        })
    }
}
