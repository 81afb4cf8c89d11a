//! A look at the raw input before imap-next parses it. Sans-I/O: the session hands it the
//! bytes it read and asks for one [`Step`] at a time. It frames the input exactly as imap-next
//! does (`framing`), and
//!
//! - holds each line until it is complete, so that a line breaking a limit never reaches
//!   imap-next (which would answer a synchronising literal's announcement with `+` and buffer
//!   what follows);
//! - enforces the limits of the session's state ([`Limits`]: line, literal, command), small
//!   before login, and answers a refused synchronising literal without `+`;
//! - after login, takes every APPEND out of imap-next's hands: once the message literal is
//!   announced it reports the command ([`Step::Append`]), and after the session's decision it
//!   hands over the message as it arrives ([`Step::Message`]) for the session to write to disk;
//!   further messages (MULTIAPPEND) come as further [`Step::Append`]s, and a CATENATE
//!   message as its parts ([`Step::CatenateUrl`], [`Step::CatenateText`], `catenate`).
//!
//! The session gives imap-next a step's bytes only when imap-next has finished with everything
//! before them, so the answers keep the order of the commands.

pub mod append;
mod catenate;
mod createuse;
mod framing;
mod searchreturn;
mod sortreturn;
mod statusappendlimit;
pub use statusappendlimit::Taken as AppendLimitTaken;
#[cfg(test)]
mod tests;

pub use append::AppendCommand;

use framing::{Announcement, MAX_TAG};

/// Longest command line before login, its CRLF included.
pub const PRE_AUTH_MAX_LINE: usize = 8 * 1024;
/// Largest literal before login: plenty for a LOGIN or AUTHENTICATE argument.
pub const PRE_AUTH_MAX_LITERAL: u32 = 8 * 1024;
/// Largest command before login, lines and literals (LOGIN with two literals at the limit).
pub const PRE_AUTH_MAX_COMMAND: u64 = 20 * 1024;
/// Longest command line after login, its CRLF included (as Dovecot's default).
pub const MAX_LINE: usize = 64 * 1024;
/// Largest literal after login outside an APPEND's message (a mailbox name, a SEARCH string).
pub const MAX_LITERAL: u32 = 64 * 1024;
/// Largest command after login outside an APPEND's message, lines and literals: all that
/// imap-next ever buffers for one command.
pub const MAX_COMMAND: u64 = 256 * 1024;
/// Largest APPEND head (the command up to its message literal, a mailbox literal included).
pub const MAX_APPEND_HEAD: usize = MAX_LINE;

/// The limits of one session state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub line: usize,
    pub literal: u32,
    pub command: u64,
}

pub const PRE_AUTH: Limits = Limits {
    line: PRE_AUTH_MAX_LINE,
    literal: PRE_AUTH_MAX_LITERAL,
    command: PRE_AUTH_MAX_COMMAND,
};

pub const AUTHENTICATED: Limits = Limits {
    line: MAX_LINE,
    literal: MAX_LITERAL,
    command: MAX_COMMAND,
};

/// What the session does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Every byte given was taken in: read more.
    NeedInput,
    /// For imap-next: a complete line, or a piece of a literal of a command it parses.
    Pass(Vec<u8>),
    /// The command broke a limit or can't be read: answer it.
    Refuse(Refusal),
    /// A synchronising literal inside an APPEND head (a mailbox name) was accepted: send `+`.
    Continue,
    /// An APPEND is complete up to its message literal. The session answers with
    /// [`InputGuard::accept_message`] or [`InputGuard::refuse_message`] before the next step.
    Append(AppendCommand),
    /// The last this many bytes taken are message data of the accepted APPEND.
    Message(usize),
    /// A CATENATE part (RFC 4469) of the accepted APPEND: the URL whose content comes next in
    /// the message. The session answers with [`InputGuard::accept_message`] (it copied it) or
    /// [`InputGuard::refuse_message`] (it answered the APPEND) before the next step.
    CatenateUrl(String),
    /// A CATENATE `TEXT` literal of this size (`utf8`: a `UTF8 (literal8)` part, RFC 6855
    /// §4): decided as a message ([`Step::Append`]), then its bytes come as [`Step::Message`].
    CatenateText { size: u32, sync: bool, utf8: bool },
    /// The last message has been read. `well_formed`: the command ended right after it
    /// (anything else is a syntax error and was dropped). Another message (MULTIAPPEND)
    /// comes as a further [`Step::Append`] instead.
    MessageEnd { well_formed: bool },
    /// A whole LIST command (after login), its literals inline: imap-codec can't parse
    /// LIST-EXTENDED (RFC 5258), so the session does (`commands::list`).
    List(Vec<u8>),
}

/// A command refused by the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub tag: Option<String>,
    pub reason: Reason,
    /// The connection must close after the answer: the rest of the command can't be skipped
    /// (a line without end in sight, or a LITERAL+ payload before login).
    pub close: bool,
    /// Earlier lines of the command went to imap-next, which must forget them.
    pub reset_parser: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    LineTooLong { limit: usize },
    LiteralTooBig { size: u32, limit: u32 },
    CommandTooBig { limit: u64 },
    AppendSyntax,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// In a line, held in `line` until it ends.
    Line,
    /// In a literal of a command imap-next parses: bytes left.
    Literal(u32),
    /// In a literal of an APPEND head: bytes left, collected in `head`.
    HeadLiteral(u32),
    /// Waiting for the session's decision on the APPEND just reported.
    Decision { size: u32, sync: bool },
    /// In the message of an accepted APPEND: bytes left.
    Message(u32),
    /// In a literal of a command already answered: bytes left to skip.
    Skip(u32),
    /// Reading CATENATE parts from `cat_line` at `cat_pos`.
    CatParts,
    /// Waiting for the session's decision on a CATENATE head or URL part.
    CatDecision,
    /// After a refusal that closes the connection.
    Closed,
}

/// What the lines of the current command are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    /// None yet: the next line is the first of a command.
    New,
    /// A command for imap-next.
    Parsed,
    /// An APPEND head being collected in `head`.
    AppendHead,
    /// The rest of an APPEND's line after its message.
    AfterMessage,
    /// A LIST being collected whole in `head`, for [`Step::List`].
    ListWhole,
    /// The rest of a CATENATE part list after a TEXT literal.
    CatParts,
    /// Answered already: the rest is dropped.
    Dropped,
}

#[derive(Debug)]
pub struct InputGuard {
    limits: Limits,
    /// Logged in: APPENDs are taken, and literals of refused commands are skipped.
    authenticated: bool,
    /// In IDLE: lines are only framed (they are DONE, or garbage for imap-next to refuse).
    idle: bool,
    mode: Mode,
    command: Command,
    /// The line being received.
    line: Vec<u8>,
    /// The APPEND head being collected.
    head: Vec<u8>,
    /// The current command's tag, for answers.
    tag: Option<String>,
    /// Bytes of the current command so far, lines and literals.
    size: u64,
    /// Some of the current command went to imap-next.
    passed: bool,
    /// The current command is a CREATE (after login): its `(USE (...))` is taken off.
    create: bool,
    /// The SPECIAL-USE attributes of the last CREATE passed, with its tag (`createuse`).
    create_use: Option<(Option<String>, Vec<String>)>,
    /// The RETURN options of the last SEARCH passed, with its tag (`searchreturn`).
    search_return: Option<(Option<String>, Vec<String>)>,
    /// The current command is a STATUS (after login): APPENDLIMIT is taken out.
    status: bool,
    /// The last STATUS passed asked for APPENDLIMIT, with its tag (`statusappendlimit`).
    status_appendlimit: Option<(Option<String>, statusappendlimit::Taken)>,
    /// What the last [`Step::Pass`] was: a line (`Some(first line of its command)`) or a
    /// piece of a literal (None). SEARCHRES rewrites lines only (`imap::searchres`).
    passed_line: Option<bool>,
    /// The line whose CATENATE parts are being read, where the next starts, and the literal
    /// it announces.
    cat_line: Vec<u8>,
    cat_pos: usize,
    cat_announcement: Option<Announcement>,
    /// The message decision pending is for a CATENATE TEXT literal.
    cat_text: bool,
    /// The message decision pending is for a `UTF8 (literal8)` message.
    utf8_pending: bool,
    /// The message being read is a `UTF8 (literal8)` one: its `)` comes next.
    utf8_open: bool,
    /// The CATENATE part being read is a `UTF8 (literal8)` one: its `)` starts the next line.
    cat_utf8_open: bool,
}

impl Default for InputGuard {
    fn default() -> Self {
        InputGuard::new()
    }
}

impl InputGuard {
    /// A guard for a new connection (not authenticated).
    pub fn new() -> InputGuard {
        InputGuard {
            limits: PRE_AUTH,
            authenticated: false,
            idle: false,
            mode: Mode::Line,
            command: Command::New,
            line: Vec::new(),
            head: Vec::new(),
            tag: None,
            size: 0,
            passed: false,
            create: false,
            create_use: None,
            search_return: None,
            status: false,
            status_appendlimit: None,
            passed_line: None,
            cat_line: Vec::new(),
            cat_pos: 0,
            cat_announcement: None,
            cat_text: false,
            utf8_pending: false,
            utf8_open: false,
            cat_utf8_open: false,
        }
    }

    /// Whether the last [`Step::Pass`] was a command line (`Some(true)` for a command's
    /// first line) rather than literal bytes (None).
    pub fn passed_line(&self) -> Option<bool> {
        self.passed_line
    }

    /// Whether the STATUS tagged `tag` asked for APPENDLIMIT (taken out of its item list).
    pub fn take_status_appendlimit(&mut self, tag: &str) -> Option<statusappendlimit::Taken> {
        match self.status_appendlimit.take() {
            Some((Some(own), taken)) if own == tag => Some(taken),
            _ => None,
        }
    }

    /// The RETURN options of the SEARCH tagged `tag`, taken off its line (ESEARCH).
    pub fn take_search_return(&mut self, tag: &str) -> Option<Vec<String>> {
        match self.search_return.take() {
            Some((Some(own), options)) if own == tag => Some(options),
            _ => None,
        }
    }

    /// The `(USE (...))` attributes of the CREATE tagged `tag`, taken off its line.
    pub fn take_create_use(&mut self, tag: &str) -> Option<Vec<String>> {
        match self.create_use.take() {
            Some((Some(own), uses)) if own == tag => Some(uses),
            _ => None,
        }
    }

    /// The session logged in: the larger limits, and APPEND is streamed.
    pub fn logged_in(&mut self) {
        self.limits = AUTHENTICATED;
        self.authenticated = true;
    }

    /// The session is in IDLE (`true`) or back out of it.
    pub fn set_idle(&mut self, idle: bool) {
        self.idle = idle;
    }

    /// The next step for `input` (the bytes read and not yet taken): how many of them it took,
    /// and what to do. [`Step::NeedInput`] comes only once all of them are taken.
    pub fn next(&mut self, input: &[u8]) -> (usize, Step) {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.mode {
                Mode::Closed => return (input.len(), Step::NeedInput),
                // The session must decide before reading on; if it didn't, it's a refusal.
                Mode::Decision { .. } | Mode::CatDecision => self.refuse_message(),
                Mode::CatParts => {
                    if let Some(step) = self.cat_step() {
                        return (used, step);
                    }
                }
                _ if rest.is_empty() => return (used, Step::NeedInput),
                Mode::Literal(left) => {
                    self.passed_line = None;
                    let n = take(left, rest);
                    self.mode = literal_or_line(left - n as u32, Mode::Literal);
                    return (used + n, Step::Pass(rest[..n].to_vec()));
                }
                Mode::Message(left) => {
                    let n = take(left, rest);
                    self.mode = literal_or_line(left - n as u32, Mode::Message);
                    return (used + n, Step::Message(n));
                }
                Mode::HeadLiteral(left) => {
                    let n = take(left, rest);
                    self.head.extend_from_slice(&rest[..n]);
                    self.mode = literal_or_line(left - n as u32, Mode::HeadLiteral);
                    used += n;
                }
                Mode::Skip(left) => {
                    let n = take(left, rest);
                    self.mode = literal_or_line(left - n as u32, Mode::Skip);
                    used += n;
                }
                Mode::Line => {
                    let (part, complete) = match memchr::memchr(b'\n', rest) {
                        Some(at) => (&rest[..=at], true),
                        None => (rest, false),
                    };
                    if self.line.len() + part.len() > self.limits.line {
                        let tag = self.tag_for_reply(part);
                        return (
                            input.len(),
                            self.close(
                                tag,
                                Reason::LineTooLong {
                                    limit: self.limits.line,
                                },
                            ),
                        );
                    }
                    self.line.extend_from_slice(part);
                    used += part.len();
                    if !complete {
                        return (used, Step::NeedInput);
                    }
                    if let Some(step) = self.end_of_line() {
                        return (used, step);
                    }
                }
            }
        }
    }

    /// After [`Step::Append`]: the message will be taken (send `+` first if it is
    /// synchronising) and comes as [`Step::Message`], then [`Step::MessageEnd`].
    pub fn accept_message(&mut self) {
        match self.mode {
            Mode::Decision { size, .. } => {
                self.mode = literal_or_line(size, Mode::Message);
                self.utf8_open = std::mem::take(&mut self.utf8_pending);
                self.command = if std::mem::take(&mut self.cat_text) {
                    Command::CatParts
                } else {
                    Command::AfterMessage
                };
            }
            Mode::CatDecision => self.mode = Mode::CatParts,
            _ => {}
        }
    }

    /// After [`Step::Append`]: the APPEND was answered (a NO or BAD). A synchronising message
    /// will not come; a non-synchronising one is skipped, bytes never kept.
    pub fn refuse_message(&mut self) {
        self.cat_text = false;
        self.cat_utf8_open = false;
        self.utf8_pending = false;
        if self.mode == Mode::CatDecision {
            // The rest of the part list is dropped, from the literal its line announced.
            self.cat_line.clear();
            self.mode = Mode::Line;
            let announcement = self.cat_announcement.take();
            if self.drop_rest(announcement) {
                self.mode = Mode::Closed;
            }
            return;
        }
        if let Mode::Decision { size, sync } = self.mode {
            self.head.clear();
            if sync {
                self.mode = Mode::Line;
                self.command = Command::New;
            } else {
                self.mode = literal_or_line(size, Mode::Skip);
                self.command = Command::Dropped;
            }
        }
    }

    fn tag_for_reply(&self, part: &[u8]) -> Option<String> {
        if self.command == Command::New {
            // The tag is at the start of the line: a few bytes are enough.
            let mut start: Vec<u8> = self.line.iter().take(MAX_TAG + 1).copied().collect();
            let room = (MAX_TAG + 1).saturating_sub(start.len());
            start.extend_from_slice(&part[..part.len().min(room)]);
            framing::tag_of(&start)
        } else {
            self.tag.clone()
        }
    }

    /// A line ended (it is in `self.line`).
    fn end_of_line(&mut self) -> Option<Step> {
        self.passed_line = Some(self.command == Command::New);
        let mut line = std::mem::take(&mut self.line);
        let mut announcement = framing::literal_announcement(&line);
        if self.command == Command::New && self.authenticated && !self.idle {
            if let Some((stripped, options)) =
                searchreturn::split_return(&line).or_else(|| sortreturn::split_return(&line))
            {
                self.search_return = Some((framing::tag_of(&line), options));
                line = stripped;
                announcement = framing::literal_announcement(&line);
            }
        }
        if self.command == Command::New {
            self.tag = framing::tag_of(&line);
            self.size = 0;
            self.passed = false;
            self.create = self.authenticated && !self.idle && createuse::is_create(&line);
            self.status = self.authenticated && !self.idle && statusappendlimit::is_status(&line);
            self.command = if self.authenticated && !self.idle && framing::is_append(&line) {
                Command::AppendHead
            } else if self.authenticated && !self.idle && framing::is_list(&line) {
                Command::ListWhole
            } else {
                Command::Parsed
            };
        }
        self.size = self.size.saturating_add(line.len() as u64);
        match self.command {
            Command::New | Command::Parsed => self.parsed_line(line, announcement),
            Command::AppendHead => self.append_head_line(&line, announcement),
            Command::ListWhole => self.list_line(&line, announcement),
            Command::AfterMessage => Some(self.after_message(&line, announcement)),
            Command::CatParts => {
                self.cat_line = line;
                self.cat_pos = 0;
                self.cat_announcement = announcement;
                self.mode = Mode::CatParts;
                None
            }
            Command::Dropped => {
                if self.drop_rest(announcement) {
                    self.mode = Mode::Closed;
                }
                None
            }
        }
    }

    fn parsed_line(&mut self, line: Vec<u8>, announcement: Option<Announcement>) -> Option<Step> {
        let limits = self.limits;
        if self.size > limits.command {
            return Some(self.refuse(
                Reason::CommandTooBig {
                    limit: limits.command,
                },
                announcement,
            ));
        }
        let Some(literal) = announcement else {
            self.command = Command::New;
            if self.create {
                if let Some((stripped, uses)) = createuse::split_use(&line) {
                    self.create_use = Some((self.tag.clone(), uses));
                    return Some(Step::Pass(stripped));
                }
            }
            if self.status {
                if let Some((stripped, taken)) = statusappendlimit::split_appendlimit(&line) {
                    self.status_appendlimit = Some((self.tag.clone(), taken));
                    return Some(Step::Pass(stripped));
                }
            }
            return Some(Step::Pass(line));
        };
        if literal.length > limits.literal {
            return Some(self.refuse(
                Reason::LiteralTooBig {
                    size: literal.length,
                    limit: limits.literal,
                },
                announcement,
            ));
        }
        if self.size + u64::from(literal.length) > limits.command {
            return Some(self.refuse(
                Reason::CommandTooBig {
                    limit: limits.command,
                },
                announcement,
            ));
        }
        self.size += u64::from(literal.length);
        self.passed = true;
        self.mode = literal_or_line(literal.length, Mode::Literal);
        Some(Step::Pass(line))
    }

    fn append_head_line(
        &mut self,
        line: &[u8],
        announcement: Option<Announcement>,
    ) -> Option<Step> {
        if self.head.len() + line.len() > MAX_APPEND_HEAD {
            self.head.clear();
            return Some(self.refuse(
                Reason::CommandTooBig {
                    limit: MAX_APPEND_HEAD as u64,
                },
                announcement,
            ));
        }
        let line_start = self.head.len();
        self.head.extend_from_slice(line);
        let head = std::mem::take(&mut self.head);
        let (before, last) = head.split_at(line_start);
        if let Some(step) = self.catenate_head(before, last, announcement, false) {
            return Some(step);
        }
        self.head = head;
        let Some(literal) = announcement else {
            // The command ended without a message.
            self.head.clear();
            return Some(self.refuse(Reason::AppendSyntax, None));
        };
        let at = line_start + literal.start;
        if let Some(command) = append::decode_head(&self.head, at, literal.length, literal.sync)
            .or_else(|| append::decode_utf8_head(&self.head, at, literal.length, literal.sync))
        {
            self.head.clear();
            return Some(self.message_announced(command, literal));
        }
        // Not the message: an argument before it (a mailbox name as a literal), if it fits.
        if self.head.len() as u64 + u64::from(literal.length) > MAX_APPEND_HEAD as u64 {
            self.head.clear();
            return Some(self.refuse(Reason::AppendSyntax, announcement));
        }
        self.mode = literal_or_line(literal.length, Mode::HeadLiteral);
        literal.sync.then_some(Step::Continue)
    }

    /// A line of a LIST taken whole: kept in `head` (with the literals it announces, `+`
    /// sent for a synchronising one) until the command ends. The limits are those of an
    /// APPEND head: a LIST is a reference and a few patterns.
    fn list_line(&mut self, line: &[u8], announcement: Option<Announcement>) -> Option<Step> {
        if self.head.len() + line.len() > MAX_APPEND_HEAD {
            self.head.clear();
            return Some(self.refuse(
                Reason::CommandTooBig {
                    limit: MAX_APPEND_HEAD as u64,
                },
                announcement,
            ));
        }
        self.head.extend_from_slice(line);
        let Some(literal) = announcement else {
            self.command = Command::New;
            return Some(Step::List(std::mem::take(&mut self.head)));
        };
        if literal.length > self.limits.literal
            || self.head.len() as u64 + u64::from(literal.length) > MAX_APPEND_HEAD as u64
        {
            self.head.clear();
            return Some(self.refuse(
                Reason::LiteralTooBig {
                    size: literal.length,
                    limit: self.limits.literal,
                },
                announcement,
            ));
        }
        self.mode = literal_or_line(literal.length, Mode::HeadLiteral);
        literal.sync.then_some(Step::Continue)
    }

    /// What follows a message: the command's end, another message (MULTIAPPEND), or a
    /// syntax error (the rest is dropped).
    fn after_message(&mut self, line: &[u8], announcement: Option<Announcement>) -> Step {
        let mut line = line;
        let mut announcement = announcement;
        if std::mem::take(&mut self.utf8_open) {
            // `UTF8 (literal8)`: the `)` closes it; what follows is as after any message.
            match line.strip_prefix(b")") {
                Some(rest) => {
                    line = rest;
                    announcement = announcement.and_then(|a| {
                        Some(Announcement {
                            start: a.start.checked_sub(1)?,
                            ..a
                        })
                    });
                }
                None => {
                    if self.drop_rest(announcement) {
                        self.mode = Mode::Closed;
                    }
                    return Step::MessageEnd { well_formed: false };
                }
            }
        }
        let well_formed = line == b"\r\n";
        if !well_formed {
            if let Some(step) = self.next_message(line, announcement) {
                return step;
            }
        }
        if self.drop_rest(announcement) {
            self.mode = Mode::Closed;
        }
        Step::MessageEnd { well_formed }
    }

    /// A line after a message that announces another (MULTIAPPEND): reported as the next
    /// [`Step::Append`], for the session's decision.
    fn next_message(&mut self, line: &[u8], announcement: Option<Announcement>) -> Option<Step> {
        let tag = self.tag.clone()?;
        if let Some(step) = self.catenate_head(
            &[tag.as_bytes(), b" APPEND A"].concat(),
            line,
            announcement,
            true,
        ) {
            return Some(step);
        }
        let literal = announcement?;
        let command = append::decode_next(&tag, line, literal.start, literal.length, literal.sync)?;
        Some(self.message_announced(command, literal))
    }

    /// An APPEND's message literal was announced: reported for the session's decision (which
    /// refuses the `UTF8 (literal8)` form before `ENABLE UTF8=ACCEPT`, RFC 6855 §4).
    fn message_announced(&mut self, command: AppendCommand, literal: Announcement) -> Step {
        self.utf8_pending = command.utf8;
        self.mode = Mode::Decision {
            size: literal.length,
            sync: literal.sync,
        };
        Step::Append(command)
    }

    /// `before` + `line` (the APPEND so far, `line` its last line) switching to CATENATE in
    /// `line`: reported as a [`Step::Append`] (`next`: of a further message), the parts
    /// to be read from `line` once the session accepts it.
    fn catenate_head(
        &mut self,
        before: &[u8],
        line: &[u8],
        announcement: Option<Announcement>,
        next: bool,
    ) -> Option<Step> {
        let whole = [before, line].concat();
        let (mut command, at) = catenate::split_head(&whole)?;
        // The switch must be in the last line (earlier ones end in a literal argument).
        let at = at.checked_sub(before.len())?;
        command.next = next;
        self.head.clear();
        self.cat_line = line.to_vec();
        self.cat_pos = at;
        self.cat_announcement = announcement;
        self.mode = Mode::CatDecision;
        Some(Step::Append(command))
    }

    /// The next CATENATE part of `cat_line`, as a step; None when there is nothing to report
    /// (the mode then says what comes next).
    fn cat_step(&mut self) -> Option<Step> {
        let announcement = self.cat_announcement;
        let text_at = announcement.map(|a| {
            if a.start > 0 && self.cat_line.get(a.start - 1) == Some(&b'~') {
                a.start - 1
            } else {
                a.start
            }
        });
        if std::mem::take(&mut self.cat_utf8_open) {
            // The `)` of a `UTF8 (literal8)` part, right after its literal.
            if self.cat_line.get(self.cat_pos) == Some(&b')') {
                self.cat_pos += 1;
            } else {
                return Some(self.cat_bad(announcement));
            }
        }
        let (part, next) = catenate::next_part(&self.cat_line, self.cat_pos, text_at);
        self.cat_pos = next;
        match part {
            catenate::Part::Url(url) => {
                self.mode = Mode::CatDecision;
                Some(Step::CatenateUrl(url))
            }
            catenate::Part::Text | catenate::Part::Utf8Text => {
                let utf8 = part == catenate::Part::Utf8Text;
                let literal = announcement?;
                self.cat_line.clear();
                self.cat_announcement = None;
                self.cat_text = true;
                self.mode = Mode::Decision {
                    size: literal.length,
                    sync: literal.sync,
                };
                self.cat_utf8_open = utf8;
                Some(Step::CatenateText {
                    size: literal.length,
                    sync: literal.sync,
                    utf8,
                })
            }
            catenate::Part::End(after) => {
                let rest = self.cat_line.get(after..).unwrap_or_default().to_vec();
                let announcement = announcement.and_then(|a| {
                    Some(Announcement {
                        start: a.start.checked_sub(after)?,
                        ..a
                    })
                });
                self.cat_line.clear();
                self.cat_announcement = None;
                self.mode = Mode::Line;
                self.command = Command::AfterMessage;
                Some(self.after_message(&rest, announcement))
            }
            catenate::Part::Bad => Some(self.cat_bad(announcement)),
        }
    }

    /// A syntax error in a CATENATE part list: the rest of the command is dropped.
    fn cat_bad(&mut self, announcement: Option<Announcement>) -> Step {
        self.cat_line.clear();
        self.cat_announcement = None;
        self.mode = Mode::Line;
        if self.drop_rest(announcement) {
            self.mode = Mode::Closed;
        }
        Step::MessageEnd { well_formed: false }
    }

    /// Answers the current command with `reason`; its rest (from a literal the refused line
    /// announced) is dropped.
    fn refuse(&mut self, reason: Reason, announcement: Option<Announcement>) -> Step {
        let reset_parser = self.passed;
        let close = self.drop_rest(announcement);
        if close {
            self.mode = Mode::Closed;
        }
        Step::Refuse(Refusal {
            tag: self.tag.clone(),
            reason,
            close,
            reset_parser,
        })
    }

    /// A refusal whose command can't be skipped: answer, then close.
    fn close(&mut self, tag: Option<String>, reason: Reason) -> Step {
        self.mode = Mode::Closed;
        Step::Refuse(Refusal {
            tag,
            reason,
            close: true,
            reset_parser: self.passed,
        })
    }

    /// The current command was answered at a line that announced `announcement`: a
    /// synchronising literal will not be sent (no `+` came), so the command is over; a
    /// LITERAL+ one is on its way and is skipped after login. True when it can't be skipped
    /// (before login, where skipping would let anyone make us read without end).
    fn drop_rest(&mut self, announcement: Option<Announcement>) -> bool {
        match announcement {
            Some(literal) if !literal.sync => {
                if !self.authenticated {
                    return true;
                }
                self.mode = literal_or_line(literal.length, Mode::Skip);
                self.command = Command::Dropped;
            }
            _ => self.command = Command::New,
        }
        false
    }
}

/// How much of `rest` belongs to a literal with `left` bytes to go.
fn take(left: u32, rest: &[u8]) -> usize {
    rest.len().min(left as usize)
}

/// `mode(left)`, or back to lines when nothing is left.
fn literal_or_line(left: u32, mode: fn(u32) -> Mode) -> Mode {
    if left == 0 {
        Mode::Line
    } else {
        mode(left)
    }
}
