//! The response to each POP3 command, by state.

use super::error::Pop3Error;
use super::proto::{Session, State, Step};
use super::response::{Code, Response};
use crate::auth::sasl::{self, Credentials};

/// The arguments each command takes (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH):
/// at least, at most, and the syntax for the `-ERR` when the count is wrong. PASS is not here:
/// its argument is the rest of the line, spaces included.
fn arity(verb: &str) -> Option<(usize, usize, &'static str)> {
    Some(match verb {
        "CAPA" | "QUIT" | "NOOP" | "STLS" | "STAT" | "RSET" => (0, 0, "no arguments"),
        "USER" => (1, 1, "USER name"),
        "AUTH" => (0, 2, "AUTH [mechanism [initial-response]]"),
        "LIST" => (0, 1, "LIST [msg]"),
        "UIDL" => (0, 1, "UIDL [msg]"),
        "RETR" => (1, 1, "RETR msg"),
        "DELE" => (1, 1, "DELE msg"),
        "TOP" => (2, 2, "TOP msg n"),
        _ => return None,
    })
}

impl Session {
    pub(super) fn command(&mut self, line: &str) -> Step {
        let (verb, rest) = match line.split_once(' ') {
            Some((verb, rest)) => (verb.to_ascii_uppercase(), rest),
            None => (line.trim().to_ascii_uppercase(), ""),
        };
        // The line is at most MAX_COMMAND_LINE bytes, so is this list.
        let args: Vec<&str> = rest.split_ascii_whitespace().collect();
        if let Some((min, max, syntax)) = arity(&verb) {
            if args.len() < min || args.len() > max {
                let text = if max == 0 {
                    format!("{verb} takes {syntax}")
                } else {
                    format!("Syntax: {syntax}")
                };
                return self.refuse(Pop3Error::syntax(text));
            }
        }
        let arg = |n: usize| args.get(n).copied();
        match (&self.state, verb.as_str()) {
            (_, "CAPA") => Step::Reply(self.capa()),
            (_, "QUIT") => self.quit(),
            (_, "NOOP") if matches!(self.state, State::Transaction) => {
                Step::Reply(Response::ok(""))
            }
            (State::Authorization { .. }, "STLS") => self.stls(),
            (State::Authorization { .. }, "USER") => self.user(arg(0).unwrap_or("")),
            (State::Authorization { .. }, "PASS") => self.pass(line),
            (State::Authorization { .. }, "AUTH") => self.auth(arg(0), arg(1)),
            (State::Transaction, "STAT") => self.stat(),
            (State::Transaction, "LIST") => self.list(arg(0)),
            (State::Transaction, "UIDL") => self.uidl(arg(0)),
            (State::Transaction, "RETR") => self.retrieve(arg(0).unwrap_or(""), None),
            (State::Transaction, "TOP") => self.top(arg(0).unwrap_or(""), arg(1).unwrap_or("")),
            (State::Transaction, "DELE") => self.dele(arg(0).unwrap_or("")),
            (State::Transaction, "RSET") => {
                self.deleted.iter_mut().for_each(|d| *d = false);
                Step::Reply(Response::ok(format!("{} messages", self.messages.len())))
            }
            (
                _,
                "STLS" | "USER" | "PASS" | "AUTH" | "STAT" | "LIST" | "UIDL" | "RETR" | "TOP"
                | "DELE" | "RSET" | "NOOP",
            ) => self.refuse(Pop3Error::user("Command not valid in this state")),
            _ => self.refuse(Pop3Error::syntax("Unknown command")),
        }
    }

    /// Logins are allowed here and now (`tls.mode`).
    fn login_allowed(&self) -> bool {
        self.tls_active || self.security.auth_in_plaintext
    }

    fn capa(&self) -> Response {
        let mut lines = vec!["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"];
        let authorization = matches!(self.state, State::Authorization { .. });
        if authorization && self.login_allowed() {
            lines.extend(["USER", "SASL PLAIN"]);
        }
        if authorization && self.security.stls && !self.tls_active {
            lines.push("STLS");
        }
        lines.push("IMPLEMENTATION ics-mail");
        let body: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
        Response::Multi("Capability list follows".into(), body.into_bytes())
    }

    fn quit(&mut self) -> Step {
        if matches!(self.state, State::Transaction) {
            let doomed: Vec<usize> = (0..self.deleted.len())
                .filter(|&i| self.deleted[i])
                .collect();
            self.state = State::Waiting;
            return Step::Update(doomed);
        }
        self.state = State::Closed;
        Step::Reply(Response::ok("Bye"))
    }

    fn stls(&mut self) -> Step {
        if self.tls_active {
            return self.refuse(Pop3Error::user("TLS is already active"));
        }
        if !self.security.stls {
            return self.refuse(Pop3Error::user("STLS is not available"));
        }
        if self.has_pending_input() {
            // Nothing may be pipelined after STLS (it would be read as if encrypted).
            self.state = State::Closed;
            return Step::Refuse(Pop3Error::user("Commands pipelined after STLS, closing"));
        }
        self.state = State::StartTls;
        Step::Reply(Response::ok("Begin TLS negotiation"))
    }

    fn encryption_required(&mut self) -> Step {
        self.refuse(Pop3Error::user_code(
            Code::SysPerm,
            "Logins are only allowed after STLS (or on the POP3S port)",
        ))
    }

    fn user(&mut self, name: &str) -> Step {
        if !self.login_allowed() {
            return self.encryption_required();
        }
        if name.is_empty() {
            return self.refuse(Pop3Error::syntax("USER needs a name"));
        }
        self.state = State::Authorization {
            user: Some(name.to_string()),
        };
        Step::Reply(Response::ok("Send PASS"))
    }

    fn pass(&mut self, line: &str) -> Step {
        if !self.login_allowed() {
            return self.encryption_required();
        }
        let State::Authorization { user: Some(user) } = &self.state else {
            return self.refuse(Pop3Error::user("Send USER first"));
        };
        // The password is the rest of the line, spaces included (RFC 1939 allows them).
        let password = line.get(5..).unwrap_or("");
        let credentials = Credentials {
            login: user.clone(),
            password: password.as_bytes().to_vec(),
            authzid: None,
        };
        self.credentials(Ok(credentials))
    }

    fn auth(&mut self, mechanism: Option<&str>, initial: Option<&str>) -> Step {
        let Some(mechanism) = mechanism else {
            // RFC 5034 §4: AUTH without a mechanism lists them (a Thunderbird habit).
            let body = if self.login_allowed() {
                "PLAIN\r\n"
            } else {
                ""
            };
            return Step::Reply(Response::Multi(String::new(), body.as_bytes().to_vec()));
        };
        if !self.login_allowed() {
            return self.encryption_required();
        }
        if !mechanism.eq_ignore_ascii_case("PLAIN") {
            return self.refuse(Pop3Error::user("Unsupported authentication mechanism"));
        }
        match initial {
            Some(response) => self.credentials(sasl::decode_plain(response)),
            None => {
                self.state = State::SaslPlain;
                Step::Reply(Response::Continue(String::new()))
            }
        }
    }

    /// A message number argument: digits only, 1-based, existing, not deleted. A number too
    /// big for any maildrop is just "no such message".
    fn message_number(&self, arg: &str) -> Result<usize, Pop3Error> {
        if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Pop3Error::syntax("Invalid message number"));
        }
        let index = arg
            .parse::<usize>()
            .ok()
            .and_then(|number| number.checked_sub(1))
            .filter(|&index| index < self.messages.len())
            .ok_or_else(|| Pop3Error::user("No such message"))?;
        if self.deleted[index] {
            return Err(Pop3Error::user("Message is deleted"));
        }
        Ok(index)
    }

    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.messages.len()).filter(|&i| !self.deleted[i])
    }

    fn stat(&mut self) -> Step {
        let count = self.live().count();
        let octets: u64 = self.live().map(|i| self.messages[i].size).sum();
        Step::Reply(Response::ok(format!("{count} {octets}")))
    }

    fn list(&mut self, number: Option<&str>) -> Step {
        self.listing(number, |info| info.size.to_string())
    }

    fn uidl(&mut self, number: Option<&str>) -> Step {
        self.listing(number, |info| info.uid.clone())
    }

    fn listing(
        &mut self,
        number: Option<&str>,
        field: impl Fn(&super::proto::MessageInfo) -> String,
    ) -> Step {
        if let Some(number) = number {
            return match self.message_number(number) {
                Ok(index) => Step::Reply(Response::ok(format!(
                    "{} {}",
                    index + 1,
                    field(&self.messages[index])
                ))),
                Err(err) => self.refuse(err),
            };
        }
        let body: String = self
            .live()
            .map(|i| format!("{} {}\r\n", i + 1, field(&self.messages[i])))
            .collect();
        Step::Reply(Response::Multi(String::new(), body.into_bytes()))
    }

    fn retrieve(&mut self, number: &str, top: Option<usize>) -> Step {
        match self.message_number(number) {
            Ok(index) => {
                self.state = State::Waiting;
                Step::Retrieve { index, top }
            }
            Err(err) => self.refuse(err),
        }
    }

    /// TOP msg n: n is any count of body lines (past the end, the whole body); one too big
    /// to be a number here is refused.
    fn top(&mut self, number: &str, lines: &str) -> Step {
        let lines = lines
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| lines.parse::<usize>().ok())
            .flatten();
        match lines {
            Some(lines) => self.retrieve(number, Some(lines)),
            None => self.refuse(Pop3Error::syntax("Invalid line count")),
        }
    }

    fn dele(&mut self, number: &str) -> Step {
        match self.message_number(number) {
            Ok(index) => {
                self.deleted[index] = true;
                Step::Reply(Response::ok(format!("Message {} deleted", index + 1)))
            }
            Err(err) => self.refuse(err),
        }
    }
}
