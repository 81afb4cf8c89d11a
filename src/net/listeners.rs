//! Listening sockets: taken from systemd socket activation (`LISTEN_FDS`, matched by
//! `FileDescriptorName=`), or bound from the configuration.

use anyhow::{bail, Context};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};

/// One logical listener of a daemon, e.g. `smtp` on port 25 on the SMTP interfaces.
#[derive(Debug, Clone)]
pub struct ListenSpec {
    /// The systemd `FileDescriptorName=` of its socket unit.
    pub name: &'static str,
    pub port: u16,
    /// Addresses or interface names; empty = every address.
    pub interfaces: Vec<String>,
    /// The configuration key of the port, for error messages.
    pub key: &'static str,
    /// TLS from the first byte (SMTPS, IMAPS, POP3S): nothing may be written in cleartext.
    pub implicit_tls: bool,
}

/// The listeners of `specs`, each with the name of its spec. Sockets passed by systemd are used
/// for the names they carry (unnamed ones are matched to `specs` in order); specs that systemd
/// did not pass are bound here.
pub fn open(specs: &[ListenSpec]) -> anyhow::Result<Vec<(&'static str, TcpListener)>> {
    let mut passed = from_systemd(specs)?;
    let mut result = Vec::new();
    for spec in specs {
        match passed.remove(spec.name) {
            Some(listeners) => result.extend(listeners.into_iter().map(|l| (spec.name, l))),
            None => {
                for listener in bind(spec)? {
                    result.push((spec.name, listener));
                }
            }
        }
    }
    if let Some(name) = passed.keys().next() {
        bail!("systemd passed a socket named {name:?} that this daemon does not serve");
    }
    for (_, listener) in &result {
        // tokio requires non-blocking sockets.
        listener.set_nonblocking(true)?;
    }
    Ok(result)
}

/// Removes and returns the listeners opened for `name`.
pub fn take(opened: &mut Vec<(&'static str, TcpListener)>, name: &str) -> Vec<TcpListener> {
    let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(opened)
        .into_iter()
        .partition(|(spec, _)| *spec == name);
    *opened = rest;
    mine.into_iter().map(|(_, listener)| listener).collect()
}

fn from_systemd(specs: &[ListenSpec]) -> anyhow::Result<HashMap<&'static str, Vec<TcpListener>>> {
    // Read the names before listenfd clears the activation variables.
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|names| names.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    let mut fds = listenfd::ListenFd::from_env();
    let mut result: HashMap<&'static str, Vec<TcpListener>> = HashMap::new();
    for index in 0..fds.len() {
        let given = names.get(index).map(String::as_str).unwrap_or("");
        let spec = specs
            .iter()
            .find(|spec| spec.name == given)
            .or_else(|| match given {
                // systemd-socket-activate and unnamed sockets: match by position.
                "" | "unknown" | "stored" => specs.get(index),
                _ => None,
            });
        let Some(spec) = spec else {
            bail!(
                "systemd passed socket {index} named {given:?}, which this daemon does not serve"
            );
        };
        let listener = fds
            .take_tcp_listener(index)
            .with_context(|| {
                format!("socket {index} ({given}) from systemd is not a TCP listener")
            })?
            .with_context(|| format!("socket {index} from systemd was already taken"))?;
        result.entry(spec.name).or_default().push(listener);
    }
    Ok(result)
}

fn bind(spec: &ListenSpec) -> anyhow::Result<Vec<TcpListener>> {
    let addresses = if spec.interfaces.is_empty() {
        vec![IpAddr::V6(Ipv6Addr::UNSPECIFIED)]
    } else {
        let mut addresses = Vec::new();
        for interface in &spec.interfaces {
            addresses.extend(
                interface_addresses(interface)
                    .with_context(|| format!("{}: cannot listen on {interface:?}", spec.key))?,
            );
        }
        addresses
    };
    let mut listeners = Vec::new();
    for address in addresses {
        let socket = SocketAddr::new(address, spec.port);
        let listener = match TcpListener::bind(socket) {
            // No IPv6 on this host: every IPv4 address instead.
            Err(_) if address == IpAddr::V6(Ipv6Addr::UNSPECIFIED) => {
                TcpListener::bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), spec.port))
            }
            other => other,
        }
        .with_context(|| format!("{}: cannot listen on {socket}", spec.key))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// An address as given, or the addresses of a network interface.
fn interface_addresses(interface: &str) -> anyhow::Result<Vec<IpAddr>> {
    if let Ok(address) = interface.parse::<IpAddr>() {
        return Ok(vec![address]);
    }
    let addresses: Vec<IpAddr> = interface_table()?
        .into_iter()
        .filter(|(name, _)| name == interface)
        .map(|(_, address)| address)
        .collect();
    if addresses.is_empty() {
        bail!("no interface named {interface:?} with an IP address");
    }
    Ok(addresses)
}

/// (interface name, address) pairs from getifaddrs(3).
fn interface_table() -> anyhow::Result<Vec<(String, IpAddr)>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getifaddrs");
    }
    let mut table = Vec::new();
    let mut cursor = head;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a valid node of the list returned by getifaddrs.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        if entry.ifa_addr.is_null() || entry.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(entry.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: ifa_addr is non-null and its family tells which sockaddr it is.
        let address = unsafe {
            match i32::from((*entry.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(entry.ifa_addr as *const libc::sockaddr_in);
                    Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                        sin.sin_addr.s_addr,
                    ))))
                }
                libc::AF_INET6 => {
                    let sin6 = &*(entry.ifa_addr as *const libc::sockaddr_in6);
                    Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
                }
                _ => None,
            }
        };
        if let Some(address) = address {
            table.push((name, address));
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_interface_has_addresses() {
        let addresses = interface_addresses("lo").unwrap();
        assert!(addresses.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(interface_addresses("nonexistent0").is_err());
    }
}
