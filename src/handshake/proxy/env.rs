//! The proxy environment variables, read as curl reads them.
//!
//! - `wss://` takes `https_proxy`, else `HTTPS_PROXY`; `ws://` takes `http_proxy`,
//!   else `HTTP_PROXY`; either falls back to `all_proxy`, else `ALL_PROXY`. An empty
//!   value counts as unset. curl never reads upper-case `HTTP_PROXY`, because a CGI
//!   program gets it from a request's `Proxy:` header ("httpoxy"); here, as in Go,
//!   it is read except when `REQUEST_METHOD` says the process is a CGI program.
//! - `no_proxy` (else `NO_PROXY`) lists hosts reached directly, separated by commas
//!   or spaces: `*` for every host; a name, which also covers its subdomains (a
//!   leading `.` or `*.` changes nothing); an IP address, or a CIDR block such as
//!   `10.0.0.0/8` or `fd00::/8`, matched against a host written as an address (names
//!   are not resolved for this, and name entries never match an address). A
//!   `:port` after a name is ignored: the entry covers every port.
//! - As in curl, and unlike Go, `localhost` and loopback addresses are not exempt
//!   unless `NO_PROXY` lists them.

use std::net::IpAddr;

use url::Url;

use super::Proxy;
use crate::error::Error;

/// The proxy variables of one environment.
/// Not `Debug`: the values may hold credentials.
#[derive(Clone, Default)]
pub(crate) struct ProxyEnv {
    http: Option<(&'static str, String)>,
    https: Option<(&'static str, String)>,
    all: Option<(&'static str, String)>,
    no_proxy: Option<String>,
}

impl ProxyEnv {
    /// The variables of this process.
    pub(crate) fn from_process() -> ProxyEnv {
        ProxyEnv::from_lookup(|name| std::env::var(name).ok())
    }

    /// The variables `lookup` returns, lower-case names taking precedence.
    pub(crate) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> ProxyEnv {
        let first = |names: &[&'static str]| {
            names.iter().copied().find_map(|name| {
                lookup(name)
                    .filter(|value| !value.trim().is_empty())
                    .map(|value| (name, value))
            })
        };
        let cgi = lookup("REQUEST_METHOD").is_some();
        ProxyEnv {
            http: match cgi {
                true => first(&["http_proxy"]),
                false => first(&["http_proxy", "HTTP_PROXY"]),
            },
            https: first(&["https_proxy", "HTTPS_PROXY"]),
            all: first(&["all_proxy", "ALL_PROXY"]),
            no_proxy: first(&["no_proxy", "NO_PROXY"]).map(|(_, value)| value),
        }
    }

    /// The proxy for a `ws://` or `wss://` URL, `None` to connect directly.
    pub(crate) fn proxy_for(&self, url: &Url) -> Result<Option<Proxy>, Error> {
        let by_scheme = match url.scheme() {
            "wss" => &self.https,
            _ => &self.http,
        };
        let Some((name, value)) = by_scheme.as_ref().or(self.all.as_ref()) else {
            return Ok(None);
        };
        let host = crate::handshake::host_name(url);
        if self
            .no_proxy
            .as_deref()
            .is_some_and(|list| no_proxy_matches(list, &host))
        {
            return Ok(None);
        }
        Proxy::new(value.trim()).map(Some).map_err(|err| match err {
            Error::InvalidUrl(reason) => Error::InvalidUrl(format!("{name}: {reason}")),
            other => other,
        })
    }
}

/// Whether a `NO_PROXY` list names `host` (a name, or an address without brackets).
pub(crate) fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let host_ip = host.parse::<IpAddr>().ok();
    list.split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            if let Some(block) = parse_block(entry) {
                return host_ip.is_some_and(|ip| block.contains(ip));
            }
            if host_ip.is_some() {
                // `168.1.7` is not a domain that `192.168.1.7` is under.
                return false;
            }
            let name = entry.trim_start_matches("*.").trim_start_matches('.');
            let name = name.split_once(':').map_or(name, |(name, _port)| name);
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            !name.is_empty()
                && (host == name
                    || (host.len() > name.len()
                        && host.ends_with(&name)
                        && host.as_bytes()[host.len() - name.len() - 1] == b'.'))
        })
}

/// An address block of `NO_PROXY`: an address, or an address and prefix length.
struct Block {
    base: IpAddr,
    prefix: u32,
}

impl Block {
    fn contains(&self, ip: IpAddr) -> bool {
        let masked = |bits: u128, width: u32| match self.prefix {
            0 => 0,
            prefix => bits >> (width - prefix.min(width)),
        };
        match (self.base, ip) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                masked(u32::from(base).into(), 32) == masked(u32::from(ip).into(), 32)
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                masked(u128::from(base), 128) == masked(u128::from(ip), 128)
            }
            _ => false,
        }
    }
}

/// `10.0.0.0/8`, `192.168.1.7`, `[::1]`, `fd00::/8`; `None` for a host name.
fn parse_block(entry: &str) -> Option<Block> {
    let (address, prefix) = match entry.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix.parse::<u32>().ok()?)),
        None => (entry, None),
    };
    let address = address.trim_start_matches('[').trim_end_matches(']');
    let base = address.parse::<IpAddr>().ok()?;
    let width = if base.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(width);
    (prefix <= width).then_some(Block { base, prefix })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::ProxyKind;

    fn env(vars: &[(&str, &str)]) -> ProxyEnv {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ProxyEnv::from_lookup(|name| vars.get(name).cloned())
    }

    fn proxy_host(env: &ProxyEnv, url: &str) -> Option<String> {
        let proxy = env.proxy_for(&Url::parse(url).unwrap()).unwrap();
        proxy.map(|proxy| format!("{}:{}", proxy.host(), proxy.port()))
    }

    #[test]
    fn the_scheme_picks_the_variable_and_all_proxy_is_the_fallback() {
        let vars = env(&[("HTTP_PROXY", "http://h:1"), ("HTTPS_PROXY", "http://s:2")]);
        assert_eq!(proxy_host(&vars, "ws://example.com/").as_deref(), Some("h:1"));
        assert_eq!(proxy_host(&vars, "wss://example.com/").as_deref(), Some("s:2"));

        let all = env(&[("ALL_PROXY", "socks5h://a:3"), ("HTTP_PROXY", "")]);
        assert_eq!(proxy_host(&all, "ws://example.com/").as_deref(), Some("a:3"));
        assert_eq!(proxy_host(&all, "wss://example.com/").as_deref(), Some("a:3"));
        assert_eq!(proxy_host(&env(&[]), "wss://example.com/"), None);
    }

    #[test]
    fn lower_case_names_win_as_in_curl() {
        let vars = env(&[
            ("https_proxy", "http://lower:1"),
            ("HTTPS_PROXY", "http://upper:2"),
        ]);
        assert_eq!(
            proxy_host(&vars, "wss://example.com/").as_deref(),
            Some("lower:1")
        );
        let vars = env(&[
            ("HTTPS_PROXY", "http://p:1"),
            ("NO_PROXY", "example.com"),
            ("no_proxy", "other.org"),
        ]);
        assert_eq!(proxy_host(&vars, "wss://example.com/").as_deref(), Some("p:1"));
        assert_eq!(proxy_host(&vars, "wss://other.org/"), None);
    }

    #[test]
    fn no_proxy_names_cover_their_subdomains_only_on_a_dot() {
        let list = "example.com, .corp.internal ,*.svc, localhost:8080";
        for host in [
            "example.com",
            "EXAMPLE.com.",
            "api.example.com",
            "a.b.corp.internal",
            "x.svc",
            "localhost",
        ] {
            assert!(no_proxy_matches(list, host), "{host}");
        }
        for host in [
            "notexample.com",
            "example.co",
            "corp.internal.evil",
            "127.0.0.1",
            "svc2",
        ] {
            assert!(!no_proxy_matches(list, host), "{host}");
        }
        assert!(no_proxy_matches("*", "anything.at.all"));
        assert!(!no_proxy_matches("", "example.com"));
    }

    #[test]
    fn no_proxy_addresses_and_cidr_blocks_match_address_hosts() {
        let list = "10.0.0.0/8 192.168.1.7,[::1],fd00::/8,172.16.0.0/12";
        for host in ["10.1.2.3", "192.168.1.7", "::1", "fd12:3456::1", "172.31.255.255"] {
            assert!(no_proxy_matches(list, host), "{host}");
        }
        for host in [
            "11.0.0.1",
            "192.168.1.8",
            "::2",
            "fe80::1",
            "172.32.0.0",
            "10.example.com",
        ] {
            assert!(!no_proxy_matches(list, host), "{host}");
        }
        for host in ["10.0.0.1", "192.168.1.7"] {
            assert!(!no_proxy_matches("0.1,168.1.7,1.7", host), "{host}");
        }
        assert!(no_proxy_matches("0.0.0.0/0", "203.0.113.9"));
        assert!(!no_proxy_matches("10.0.0.0/33", "10.0.0.1"));
    }

    #[test]
    fn loopback_is_proxied_unless_listed() {
        let vars = env(&[("HTTP_PROXY", "http://p:1")]);
        assert_eq!(proxy_host(&vars, "ws://127.0.0.1:9001/").as_deref(), Some("p:1"));
        assert_eq!(proxy_host(&vars, "ws://localhost:9001/").as_deref(), Some("p:1"));
        let listed = env(&[("HTTP_PROXY", "http://p:1"), ("NO_PROXY", "127.0.0.1,localhost")]);
        assert_eq!(proxy_host(&listed, "ws://127.0.0.1:9001/"), None);
        assert_eq!(proxy_host(&listed, "ws://localhost:9001/"), None);
    }

    #[test]
    fn upper_case_http_proxy_is_not_read_by_a_cgi_program() {
        let plain = env(&[("HTTP_PROXY", "http://h:1")]);
        assert_eq!(proxy_host(&plain, "ws://example.com/").as_deref(), Some("h:1"));
        let cgi = env(&[("HTTP_PROXY", "http://attacker:1"), ("REQUEST_METHOD", "GET")]);
        assert_eq!(proxy_host(&cgi, "ws://example.com/"), None);
        let cgi = env(&[("http_proxy", "http://h:1"), ("REQUEST_METHOD", "GET")]);
        assert_eq!(proxy_host(&cgi, "ws://example.com/").as_deref(), Some("h:1"));
    }

    #[test]
    fn a_bad_proxy_variable_is_an_error_naming_it() {
        let vars = env(&[("HTTPS_PROXY", "ftp://p:1")]);
        let err = vars
            .proxy_for(&Url::parse("wss://example.com/").unwrap())
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidUrl(reason) if reason.starts_with("HTTPS_PROXY")),
            "{err}"
        );
        let kind = env(&[("ALL_PROXY", "socks5://p")])
            .proxy_for(&Url::parse("ws://x/").unwrap())
            .unwrap()
            .unwrap()
            .kind();
        assert_eq!(kind, ProxyKind::Socks5);
    }
}
