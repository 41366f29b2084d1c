//! Which addresses a delivery may reach.
//!
//! A webhook URL is chosen by a customer, so without a rule it could point the fleet at the
//! operator's own network (server-side request forgery). By default only public unicast
//! addresses are allowed; the check runs on every resolved address, because a public name can
//! resolve to a private address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{Error, Result};

/// The longest URL an endpoint may have, in bytes (docs/contract.md §2): every tenant's
/// endpoints live in the Redis that every delivery reads.
pub const MAX_URL_BYTES: usize = 2048;

/// Checks that `url` is `http` or `https` with a host and at most [`MAX_URL_BYTES`], as the
/// contract requires. The error shows the URL through [`redact_url`]: it may end up in a log
/// line or a dead letter.
pub fn parse_url(url: &str) -> Result<url::Url> {
    if url.len() > MAX_URL_BYTES {
        return Err(Error::Url {
            url: redact_url(&url.chars().take(64).collect::<String>()) + "…",
            reason: format!("it is {} bytes long, more than {MAX_URL_BYTES}", url.len()),
        });
    }
    let err = |reason: &str| Error::Url {
        url: redact_url(url),
        reason: reason.to_owned(),
    };
    let parsed = url::Url::parse(url).map_err(|e| err(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(err("the scheme must be http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(err("it has no host"));
    }
    Ok(parsed)
}

/// The target ports endpoints may use (`HOOKFLEET_ALLOWED_PORTS`, e.g. `443,8000-8999`):
/// any when not set. Checked when an endpoint is created, changed or tested, and before
/// every delivery, so an operator can keep the fleet off ports that are not web servers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedPorts(Option<Vec<std::ops::RangeInclusive<u16>>>);

impl AllowedPorts {
    /// Whether `url`'s port (or its scheme's default) is allowed.
    pub fn allows(&self, url: &url::Url) -> bool {
        let Some(ranges) = &self.0 else {
            return true;
        };
        let port = url.port_or_known_default().unwrap_or(0);
        ranges.iter().any(|range| range.contains(&port))
    }

    /// Whether every port is allowed (the setting is not set).
    pub fn is_any(&self) -> bool {
        self.0.is_none()
    }
}

impl std::str::FromStr for AllowedPorts {
    type Err = String;
    /// A comma-separated list of ports and ranges (`443,8000-8999`); `any` or empty for any.
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("any") {
            return Ok(Self(None));
        }
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{p:?} is not a port (1-65535)"))
        };
        let ranges = text
            .split(',')
            .map(|item| match item.split_once('-') {
                Some((low, high)) => {
                    let (low, high) = (port(low)?, port(high)?);
                    if low > high {
                        return Err(format!("{item:?}: the range is backwards"));
                    }
                    Ok(low..=high)
                }
                None => port(item).map(|p| p..=p),
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        Ok(Self(Some(ranges)))
    }
}

/// `url` as it may be logged, put in a retry header or a dead letter, or printed in an error:
/// credentials (`user:pass@`) become `***@`, and the query and fragment are dropped, because
/// tokens ride there (`?token=…`); scheme, host, port and path stay, so an operator can still
/// tell endpoints apart. Text that is not a URL with a host is cut the same way by hand, so a
/// malformed URL does not leak its password either.
pub fn redact_url(url: &str) -> String {
    let parsed = match url::Url::parse(url) {
        Ok(parsed) if parsed.has_host() => parsed,
        _ => return redact_text(url),
    };
    let mut out = format!("{}://", parsed.scheme());
    if !parsed.username().is_empty() || parsed.password().is_some() {
        out.push_str("***@");
    }
    out.push_str(parsed.host_str().unwrap_or_default());
    if let Some(port) = parsed.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(parsed.path());
    out
}

/// [`redact_url`] for text the URL parser refused: everything from the first `?` or `#` goes,
/// and the authority (before the first `/` after `scheme://`) keeps only what follows its
/// last `@`, as a URL parser would read the host.
fn redact_text(text: &str) -> String {
    let text = &text[..text.find(['?', '#']).unwrap_or(text.len())];
    let (scheme, rest) = match text.find("://") {
        Some(i) => text.split_at(i + 3),
        None => ("", text),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rfind('@') {
        Some(at) => format!("{scheme}***@{}{path}", &authority[at + 1..]),
        None => format!("{scheme}{authority}{path}"),
    }
}

/// Whether `ip` is a public unicast address, one a webhook may be delivered to by default.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let reserved = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240; // reserved
    !reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    // Addresses that embed an IPv4 address reach that IPv4 host through a translator or tunnel,
    // so they are judged by it; otherwise `::ffff:127.0.0.1` would slip past the IPv4 rule.
    // IPv4-mapped `::ffff:0:0/96` and IPv4-translated (SIIT) `::ffff:0:0:0/96` name an IPv4
    // host that has an IPv4 address of its own to be reached by; no receiver needs these
    // spellings, so both are refused whole rather than judged by what they embed
    // (RFC 6145 §2: https://www.rfc-editor.org/rfc/rfc6145#section-2).
    if (seg[0..5] == [0; 5] && seg[5] == 0xffff)
        || (seg[0..4] == [0; 4] && seg[4..6] == [0xffff, 0])
    {
        return false;
    }
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let reserved = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00 // unique local
        || (seg[0] & 0xffc0) == 0xfe80 // link-local
        || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || (seg[0] == 0x3fff && seg[1] < 0x1000) // documentation `3fff::/20` (RFC 9637)
        || (seg[0] == 0x2001 && seg[1] == 0x0002 && seg[2] == 0) // benchmarking `2001:2::/48`
        || (seg[0] == 0x0100 && seg[1..4] == [0; 3]) // discard
        // IPv4-compatible `::a.b.c.d`, deprecated and never routed; refused whole, which is
        // stricter than judging the embedded IPv4 (RFC 4291 §2.5.5.1:
        // https://www.rfc-editor.org/rfc/rfc4291#section-2.5.5.1).
        || seg[0..6] == [0; 6]
        // Teredo `2001::/32`: the client's IPv4 is stored XOR-ed and the server's IPv4 is
        // chosen by whoever built the address, so neither can be trusted; refuse the prefix
        // (RFC 4380 §4: https://www.rfc-editor.org/rfc/rfc4380#section-4).
        || (seg[0] == 0x2001 && seg[1] == 0)
        // NAT64 local-use `64:ff9b:1::/48`: the operator's own translators, with no fixed
        // place for the IPv4 (RFC 8215: https://www.rfc-editor.org/rfc/rfc8215).
        || (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1);
    !reserved
}

/// The IPv4 address an IPv6 address carries at a fixed place, if it is of such a form.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = ip.segments();
    let v4 = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0; 4] {
        // NAT64 well-known prefix `64:ff9b::/96`: a translator forwards to the last 32 bits
        // (RFC 6052 §2.1: https://www.rfc-editor.org/rfc/rfc6052#section-2.1).
        Some(v4(seg[6], seg[7]))
    } else if seg[0] == 0x2002 {
        // 6to4 `2002::/16`: a relay tunnels to the IPv4 in bits 16..48
        // (RFC 3056 §2: https://www.rfc-editor.org/rfc/rfc3056#section-2).
        Some(v4(seg[1], seg[2]))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_ports_are_lists_of_ports_and_ranges() {
        let url = |u: &str| url::Url::parse(u).unwrap();
        let any: AllowedPorts = "".parse().unwrap();
        assert!(any.is_any() && any.allows(&url("http://a:25/")));
        let some: AllowedPorts = "443, 8000-8999".parse().unwrap();
        assert!(some.allows(&url("https://a/")));
        assert!(some.allows(&url("http://a:8080/")));
        assert!(!some.allows(&url("http://a/")), "80 by default");
        assert!(!some.allows(&url("https://a:6379/")));
        for bad in ["0", "70000", "80-20", "http", "1,,2"] {
            assert!(bad.parse::<AllowedPorts>().is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_longer_than_the_limit_are_refused() {
        let base = "https://example.com/";
        let fits = format!("{base}{}", "a".repeat(MAX_URL_BYTES - base.len()));
        assert!(parse_url(&fits).is_ok());
        let long = format!("{fits}a");
        let error = parse_url(&long).unwrap_err().to_string();
        assert!(error.contains("2049 bytes"), "{error}");
        assert!(
            error.len() < 300,
            "the error does not repeat the URL: {error}"
        );
    }

    #[test]
    fn non_public_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "::127.0.0.1",
            // benchmarking (RFC 5180) and the second documentation prefix (RFC 9637)
            "2001:2::1",
            "2001:2:0:ffff::1",
            "3fff::1",
            "3fff:fff:ffff::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} should not be public");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in [
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2001:3::1",
            "3ffe::1",
            "3fff:1000::1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} should be public");
        }
    }

    #[test]
    fn ipv6_forms_that_embed_an_ipv4_are_judged_by_it() {
        for (ip, public) in [
            // IPv4-mapped (RFC 4291 §2.5.5.2) and IPv4-translated (SIIT, RFC 6145): refused
            // whole, whatever they embed
            ("::ffff:127.0.0.1", false),
            ("::ffff:169.254.169.254", false),
            ("::ffff:1.1.1.1", false),
            ("::ffff:0:7f00:1", false),
            ("::ffff:0:101:101", false),
            ("::ffff:0:0:0", false),
            // IPv4-compatible (RFC 4291 §2.5.5.1): deprecated, refused whole
            ("::127.0.0.1", false),
            ("::10.0.0.1", false),
            ("::8.8.8.8", false),
            // 6to4 (RFC 3056): the IPv4 is bits 16..48
            ("2002:7f00:1::", false),
            ("2002:a00:1:1::1", false),
            ("2002:a9fe:a9fe::1", false),
            ("2002:c0a8:101::", false),
            ("2002:808:808::1", true),
            // Teredo (RFC 4380): refused whole, whatever it embeds
            ("2001::1", false),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", false),
            ("2001:0:808:808::", false),
            // NAT64 well-known prefix (RFC 6052)
            ("64:ff9b::7f00:1", false),
            ("64:ff9b::a9fe:a9fe", false),
            ("64:ff9b::808:808", true),
            // NAT64 local-use prefix (RFC 8215): refused whole
            ("64:ff9b:1::808:808", false),
            ("64:ff9b:1:ffff::1", false),
            // Just outside those prefixes
            ("2001:1::1", true),
            ("2003::1", true),
            ("64:ff9b:2::1", true),
        ] {
            assert_eq!(is_public(ip.parse().unwrap()), public, "{ip}");
        }
    }

    /// The WHATWG URL parser reads a host of digits, hex or octal parts, or fewer than four
    /// parts as an IPv4 address (https://url.spec.whatwg.org/#concept-ipv4-parser), and the
    /// host after the last `@` is the one connected to; both must reach `is_public` as such.
    #[test]
    fn url_hosts_are_judged_as_the_parser_reads_them() {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let one = IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1));
        for (url, ip, public) in [
            ("http://2130706433/", loopback, false),
            ("http://0x7f.1/", loopback, false),
            ("http://017700000001/", loopback, false),
            ("http://127.1/", loopback, false),
            ("http://user:pass@127.0.0.1/", loopback, false),
            ("http://1.1.1.1@127.0.0.1/", loopback, false),
            ("http://127.0.0.1@1.1.1.1/", one, true),
        ] {
            let parsed = parse_url(url).unwrap();
            let host = match parsed.host() {
                Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
                other => panic!("{url}: host {other:?} is not an IPv4 literal"),
            };
            assert_eq!(host, ip, "{url}");
            assert_eq!(is_public(host), public, "{url}");
        }
    }

    #[test]
    fn redacted_urls_keep_no_credentials_and_no_query() {
        for (url, shown) in [
            (
                "https://user:pass@hooks.example.com:8443/in/acme?token=abc#frag",
                "https://***@hooks.example.com:8443/in/acme",
            ),
            ("http://user@example.com/x", "http://***@example.com/x"),
            ("http://:pass@example.com", "http://***@example.com/"),
            ("https://example.com/path?q=1", "https://example.com/path"),
            ("http://[::1]:9/a", "http://[::1]:9/a"),
            ("https://example.com/plain", "https://example.com/plain"),
            (
                "amqp://guest:s3cret@127.0.0.1:5672/%2f",
                "amqp://***@127.0.0.1:5672/%2f",
            ),
            (
                "redis://:s3cret@127.0.0.1:6379",
                "redis://***@127.0.0.1:6379",
            ),
            // Not parseable as URLs: cut by hand, the same way.
            (
                "amqp://guest:s3cret@host:notaport/vh?x=1",
                "amqp://***@host:notaport/vh",
            ),
            ("user:pa@ss@host/x?y", "***@host/x"),
            ("nonsense", "nonsense"),
            ("", ""),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn an_invalid_url_error_does_not_echo_credentials() {
        let error = parse_url("ftp://user:s3cret@example.com/x?token=abc").unwrap_err();
        let text = error.to_string();
        assert!(
            !text.contains("s3cret") && !text.contains("token"),
            "{text}"
        );
    }

    #[test]
    fn urls_need_http_and_a_host() {
        assert!(parse_url("https://example.com/x").is_ok());
        assert!(parse_url("http://127.0.0.1:8080").is_ok());
        for bad in [
            "ftp://example.com",
            "example.com",
            "http://",
            "file:///etc/passwd",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
