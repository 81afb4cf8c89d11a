//! The response to each POP3 command, by state.

use super::proto::{Session, State, Step};
use super::response::{Code, Response};
use crate::auth::sasl::{self, Credentials};

impl Session {
    pub(super) fn command(&mut self, line: &str) -> Step {
        let (verb, args) = match line.split_once(' ') {
            Some((verb, args)) => (verb.to_ascii_uppercase(), args.trim()),
            None => (line.trim().to_ascii_uppercase(), ""),
        };
        match (&self.state, verb.as_str()) {
            (_, "CAPA") => Step::Reply(self.capa()),
            (_, "QUIT") => self.quit(),
            (_, "NOOP") if matches!(self.state, State::Transaction) => {
                Step::Reply(Response::ok(""))
            }
            (State::Authorization { .. }, "STLS") => self.stls(),
            (State::Authorization { .. }, "USER") => self.user(args),
            (State::Authorization { .. }, "PASS") => self.pass(line),
            (State::Authorization { .. }, "AUTH") => self.auth(args),
            (State::Transaction, "STAT") => self.stat(),
            (State::Transaction, "LIST") => self.list(args),
            (State::Transaction, "UIDL") => self.uidl(args),
            (State::Transaction, "RETR") => self.retrieve(args, None),
            (State::Transaction, "TOP") => self.top(args),
            (State::Transaction, "DELE") => self.dele(args),
            (State::Transaction, "RSET") => {
                self.deleted.iter_mut().for_each(|d| *d = false);
                Step::Reply(Response::ok(format!("{} messages", self.messages.len())))
            }
            (
                _,
                "STLS" | "USER" | "PASS" | "AUTH" | "STAT" | "LIST" | "UIDL" | "RETR" | "TOP"
                | "DELE" | "RSET" | "NOOP",
            ) => self.reply(Response::err("Command not valid in this state")),
            _ => self.reply(Response::err("Unknown command")),
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
            return self.reply(Response::err("TLS is already active"));
        }
        if !self.security.stls {
            return self.reply(Response::err("STLS is not available"));
        }
        if self.has_pending_input() {
            // Nothing may be pipelined after STLS (it would be read as if encrypted).
            self.state = State::Closed;
            return Step::Reply(Response::err("Commands pipelined after STLS, closing"));
        }
        self.state = State::StartTls;
        Step::Reply(Response::ok("Begin TLS negotiation"))
    }

    fn encryption_required(&mut self) -> Step {
        self.reply(Response::err_code(
            Code::SysPerm,
            "Logins are only allowed after STLS (or on the POP3S port)",
        ))
    }

    fn user(&mut self, name: &str) -> Step {
        if !self.login_allowed() {
            return self.encryption_required();
        }
        if name.is_empty() {
            return self.reply(Response::err("USER needs a name"));
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
            return self.reply(Response::err("Send USER first"));
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

    fn auth(&mut self, args: &str) -> Step {
        if args.is_empty() {
            // RFC 5034 §4: AUTH without a mechanism lists them (a Thunderbird habit).
            let body = if self.login_allowed() {
                "PLAIN\r\n"
            } else {
                ""
            };
            return Step::Reply(Response::Multi(String::new(), body.as_bytes().to_vec()));
        }
        if !self.login_allowed() {
            return self.encryption_required();
        }
        let (mechanism, initial) = match args.split_once(' ') {
            Some((mechanism, initial)) => (mechanism, Some(initial.trim())),
            None => (args, None),
        };
        if !mechanism.eq_ignore_ascii_case("PLAIN") {
            return self.reply(Response::err("Unsupported authentication mechanism"));
        }
        match initial {
            Some(response) => self.credentials(sasl::decode_plain(response)),
            None => {
                self.state = State::SaslPlain;
                Step::Reply(Response::Continue(String::new()))
            }
        }
    }

    /// A message number argument: 1-based, existing, not deleted.
    fn message_number(&self, arg: &str) -> Result<usize, Response> {
        let number: usize = arg
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Response::err("Invalid message number"))?;
        if number == 0 || number > self.messages.len() {
            return Err(Response::err("No such message"));
        }
        if self.deleted[number - 1] {
            return Err(Response::err("Message is deleted"));
        }
        Ok(number - 1)
    }

    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.messages.len()).filter(|&i| !self.deleted[i])
    }

    fn stat(&mut self) -> Step {
        let count = self.live().count();
        let octets: u64 = self.live().map(|i| self.messages[i].size).sum();
        Step::Reply(Response::ok(format!("{count} {octets}")))
    }

    fn list(&mut self, args: &str) -> Step {
        self.listing(args, |info| info.size.to_string())
    }

    fn uidl(&mut self, args: &str) -> Step {
        self.listing(args, |info| info.uid.clone())
    }

    fn listing(
        &mut self,
        args: &str,
        field: impl Fn(&super::proto::MessageInfo) -> String,
    ) -> Step {
        if !args.is_empty() {
            return match self.message_number(args) {
                Ok(index) => Step::Reply(Response::ok(format!(
                    "{} {}",
                    index + 1,
                    field(&self.messages[index])
                ))),
                Err(response) => self.reply(response),
            };
        }
        let body: String = self
            .live()
            .map(|i| format!("{} {}\r\n", i + 1, field(&self.messages[i])))
            .collect();
        Step::Reply(Response::Multi(String::new(), body.into_bytes()))
    }

    fn retrieve(&mut self, args: &str, top: Option<usize>) -> Step {
        match self.message_number(args) {
            Ok(index) => {
                self.state = State::Waiting;
                Step::Retrieve { index, top }
            }
            Err(response) => self.reply(response),
        }
    }

    fn top(&mut self, args: &str) -> Step {
        let mut parts = args.split_whitespace();
        let (Some(number), Some(lines), None) = (parts.next(), parts.next(), parts.next()) else {
            return self.reply(Response::err("Syntax: TOP msg n"));
        };
        match lines.parse::<usize>() {
            Ok(lines) => self.retrieve(number, Some(lines)),
            Err(_) => self.reply(Response::err("Invalid line count")),
        }
    }

    fn dele(&mut self, args: &str) -> Step {
        match self.message_number(args) {
            Ok(index) => {
                self.deleted[index] = true;
                Step::Reply(Response::ok(format!("Message {} deleted", index + 1)))
            }
            Err(response) => self.reply(response),
        }
    }
}
