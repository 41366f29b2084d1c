//! The SSRF guard on the delivery path (docs/contract.md §2): a DNS resolver that only hands reqwest
//! public addresses, and a check for IP-literal URLs, which reqwest never sends to a resolver.
//!
//! The resolver *pins* the address: reqwest connects to exactly the addresses that were
//! checked, so a name cannot resolve to a public address for the check and a private one for
//! the connection (DNS rebinding).

use std::net::{IpAddr, SocketAddr};

use hookfleet_core::target::is_public;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why a target was refused; found again in reqwest's error chain to label the attempt.
///
/// Its text reaches tenants (the API's answer, the attempt log), so it names neither the
/// addresses nor the setting: a tenant must not learn the cluster's internal DNS from it.
/// [`Blocked::log`] gives the operator the details.
#[derive(Debug, thiserror::Error)]
#[error("the URL resolves to an address that is not allowed")]
pub struct Blocked {
    pub host: String,
    pub addrs: String,
}

impl Blocked {
    /// Tells the operator what was refused and how to allow it.
    pub fn log(&self) {
        tracing::warn!(
            message = "Refused a non-public target; HOOKFLEET_ALLOW_PRIVATE_TARGETS=true allows them.",
            host = %self.host,
            addresses = %self.addrs,
        );
    }
}

/// Resolves with the system resolver and drops every non-public address.
#[derive(Debug, Default)]
pub struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> =
                all.iter().copied().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let addrs = all
                    .iter()
                    .map(|a| a.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                let blocked = Blocked { host, addrs };
                blocked.log();
                return Err(Box::new(blocked) as _);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// Refuses a URL whose host is a non-public IP literal.
pub fn check_literal(url: &url::Url) -> Result<(), Blocked> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        _ => return Ok(()),
    };
    if is_public(ip) {
        Ok(())
    } else {
        Err(Blocked {
            host: ip.to_string(),
            addrs: ip.to_string(),
        })
    }
}

/// Checks a URL the way a delivery would, for `endpoints add`: literal or resolved, at least
/// one address must be public.
pub async fn check_url(url: &url::Url) -> Result<(), Blocked> {
    check_literal(url)?;
    let Some(url::Host::Domain(host)) = url.host() else {
        return Ok(());
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => addrs.collect(),
        // A name that does not resolve yet is not a private target; delivery will retry it.
        Err(_) => return Ok(()),
    };
    if addrs.is_empty() || addrs.iter().any(|a| is_public(a.ip())) {
        return Ok(());
    }
    Err(Blocked {
        host: host.to_owned(),
        addrs: addrs
            .iter()
            .map(|a| a.ip().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_private_addresses_are_blocked() {
        for url in [
            "http://127.0.0.1/x",
            "http://[::1]:80/",
            "http://10.0.0.1",
            "http://169.254.169.254/",
        ] {
            assert!(check_literal(&url.parse().unwrap()).is_err(), "{url}");
        }
        assert!(check_literal(&"http://1.1.1.1/".parse().unwrap()).is_ok());
        assert!(check_literal(&"http://example.com/".parse().unwrap()).is_ok());
    }

    /// The delivery path: `parse_url`, then `check_literal`. Numeric IPv4 spellings are read
    /// as 127.0.0.1 by the WHATWG parser, IPv6 forms embedding a private IPv4 are refused, and
    /// only the host after the last `@` counts.
    #[test]
    fn literals_are_judged_as_the_delivery_path_reads_them() {
        for (url, allowed) in [
            ("http://2130706433/", false),
            ("http://0x7f.1/", false),
            ("http://017700000001/", false),
            ("http://127.1/", false),
            ("http://[::ffff:127.0.0.1]/", false),
            ("http://[2002:7f00:1::]/", false),
            ("http://[2001::1]/", false),
            ("http://[64:ff9b::a9fe:a9fe]/", false),
            ("http://[64:ff9b:1::808:808]/", false),
            ("http://user:pass@127.0.0.1/", false),
            ("http://1.1.1.1@127.0.0.1/", false),
            ("http://127.0.0.1@1.1.1.1/", true),
        ] {
            let parsed = hookfleet_core::target::parse_url(url).unwrap();
            assert_eq!(check_literal(&parsed).is_ok(), allowed, "{url}");
        }
    }

    #[tokio::test]
    async fn localhost_is_blocked_after_resolution() {
        assert!(
            check_url(&"http://localhost:8080/".parse().unwrap())
                .await
                .is_err()
        );
    }
}
