//! IP networks: `192.0.2.1`, `192.0.2.0/24`, `2001:db8::/32` — the one parser for every list
//! of addresses and networks (restriction lists, the rate limit's exemptions).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 or IPv6 network (a single address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// An address or `address/prefix`. The prefix is decimal digits within the family's width,
    /// and the address has no bits set past it (`10.0.0.1/24` is a typo for a host or for
    /// `10.0.0.0/24`: refused rather than guessed). The error says why, for a line that starts
    /// with the key.
    pub fn parse(text: &str) -> Result<Network, String> {
        let Some((net, bits)) = text.split_once('/') else {
            let address = text
                .parse::<IpAddr>()
                .map_err(|_| "is not an IP address".to_string())?;
            return Ok(Network::host(address));
        };
        let Ok(address) = net.parse::<IpAddr>() else {
            return Err(format!("{net:?} before the / is not an IP address"));
        };
        let address = address.to_canonical();
        let width = width(address);
        let prefix = (!bits.is_empty() && bits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| bits.parse::<u8>().ok())
            .flatten()
            .filter(|prefix| *prefix <= width);
        let Some(prefix) = prefix else {
            return Err(format!(
                "the prefix length must be 0 to {width}, got {bits:?}"
            ));
        };
        let network = Network { address, prefix };
        if network.first() != address {
            return Err(format!(
                "has bits set after the /{prefix} prefix (the network is {}/{prefix})",
                network.first()
            ));
        }
        Ok(network)
    }

    /// The network of exactly `address`.
    pub fn host(address: IpAddr) -> Network {
        let address = address.to_canonical();
        Network {
            address,
            prefix: width(address),
        }
    }

    /// Whether `ip` is in the network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if ip.is_ipv4() != self.address.is_ipv4() {
            return false;
        }
        let mask = self.mask();
        bits(ip) & mask == bits(self.address) & mask
    }

    /// The first address: the network's own.
    fn first(&self) -> IpAddr {
        from_bits(self.address, bits(self.address) & self.mask())
    }

    fn mask(&self) -> u128 {
        let width = u32::from(width(self.address));
        let host_bits = width - u32::from(self.prefix);
        let family = if width == 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        };
        family & !(u128::MAX.checked_shr(128 - host_bits).unwrap_or(0))
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

fn width(address: IpAddr) -> u8 {
    if address.is_ipv4() {
        32
    } else {
        128
    }
}

fn bits(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_bits(family: IpAddr, value: u128) -> IpAddr {
    match family {
        // Only the low 32 bits are ever set for IPv4.
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_match() {
        let net = Network::parse("192.0.2.0/24").unwrap();
        assert!(net.contains(ip("192.0.2.200")) && !net.contains(ip("192.0.3.1")));
        assert!(net.contains(ip("::ffff:192.0.2.9")), "IPv4-mapped");
        assert!(Network::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(!Network::parse("0.0.0.0/0").unwrap().contains(ip("::1")));
        let v6 = Network::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        assert!(Network::parse("::/0").unwrap().contains(ip("2001:db8::1")));
        let host = Network::parse("2001:db8::1").unwrap();
        assert!(host.contains(ip("2001:db8::1")) && !host.contains(ip("2001:db8::2")));
        assert_eq!(host.to_string(), "2001:db8::1/128");
    }

    #[test]
    fn malformed_networks_say_why() {
        assert!(Network::parse("10.0.0.0/33")
            .unwrap_err()
            .contains("0 to 32"));
        assert!(Network::parse("10.0.0.0/+8")
            .unwrap_err()
            .contains("0 to 32"));
        assert!(Network::parse("10.0.0.0/").is_err());
        assert!(Network::parse("2001:db8::/129").is_err());
        assert!(Network::parse("example.com").is_err());
        assert!(Network::parse("user@example.com").is_err());
        assert_eq!(
            Network::parse("10.0.0.1/24").unwrap_err(),
            "has bits set after the /24 prefix (the network is 10.0.0.0/24)"
        );
        assert!(Network::parse("2001:db8::1/64").is_err());
    }
}
