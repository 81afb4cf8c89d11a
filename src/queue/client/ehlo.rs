//! What the peer's EHLO reply offers.

use super::reply::ServerReply;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub pipelining: bool,
    pub starttls: bool,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    /// `SIZE n` (0 or absent: no declared limit).
    pub size: Option<u64>,
    pub auth_plain: bool,
    pub auth_login: bool,
}

impl Capabilities {
    /// From an EHLO reply (its first line is the greeting). A HELO reply offers nothing.
    pub fn from_ehlo(reply: &ServerReply) -> Capabilities {
        let mut caps = Capabilities::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => caps.pipelining = true,
                "STARTTLS" => caps.starttls = true,
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "SIZE" => caps.size = words.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0),
                "AUTH" => {
                    for mechanism in words {
                        match mechanism.to_ascii_uppercase().as_str() {
                            "PLAIN" => caps.auth_plain = true,
                            "LOGIN" => caps.auth_login = true,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postfix_style_ehlo() {
        let reply = ServerReply {
            code: 250,
            lines: [
                "mx.test",
                "PIPELINING",
                "SIZE 10240000",
                "STARTTLS",
                "auth login Plain",
                "8BITMIME",
                "SMTPUTF8",
                "",
            ]
            .map(String::from)
            .to_vec(),
        };
        let caps = Capabilities::from_ehlo(&reply);
        assert!(caps.pipelining && caps.starttls && caps.eight_bit_mime && caps.smtputf8);
        assert!(caps.auth_login && caps.auth_plain);
        assert_eq!(caps.size, Some(10_240_000));
        let helo = ServerReply::local(250, "PIPELINING");
        assert_eq!(Capabilities::from_ehlo(&helo), Capabilities::default());
    }
}
