//! The API endpoint goes through the same address map and loopback-only switch as the data
//! plane (`cairn_core::net`), and plain `http://` is allowed only to loopback — all decided
//! from the URL alone, before any connection.

use std::net::{IpAddr, Ipv4Addr};

use cairn_core::net::{Dialer, LOOPBACK_ONLY_ENV};
use reqwest::Url;

use crate::error::HttpError;

/// Whether a URL's host is a loopback address (`127.0.0.0/8`, `::1`, `localhost`).
pub fn is_loopback_url(url: &str) -> bool {
    Url::parse(url).is_ok_and(|u| host_ip(&u).is_some_and(|ip| ip.is_loopback()))
}

/// The host as an address: IP literals as they are, `localhost` as 127.0.0.1, other
/// names `None` (resolving them would send packets).
fn host_ip(u: &Url) -> Option<IpAddr> {
    match u.host()? {
        url::Host::Ipv4(a) => Some(IpAddr::V4(a)),
        url::Host::Ipv6(a) => Some(IpAddr::V6(a)),
        url::Host::Domain(d) if d.eq_ignore_ascii_case("localhost") => {
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        }
        url::Host::Domain(_) => None,
    }
}

/// Checks an endpoint and returns the URL to dial: an IP literal inside a mapped range is
/// rewritten to its loopback address (10.0.20.1 → 127.0.20.1). Refuses, before any
/// connection: a non-loopback (mapped) address or any host name other than `localhost`
/// while the loopback-only switch is on; `http://` to anything but loopback; schemes other
/// than `http`/`https`. The trailing `/` is dropped so paths can be appended.
pub fn resolve_endpoint(endpoint: &str, net: &Dialer) -> Result<Url, HttpError> {
    let mut url = Url::parse(endpoint.trim())
        .map_err(|e| HttpError::Config(format!("bad endpoint {endpoint:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(HttpError::Config(format!(
            "endpoint {endpoint:?}: only http and https are supported"
        )));
    }
    let shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    let dialled = host_ip(&url).map(|ip| net.map().map(ip));
    let loopback = dialled.is_some_and(|ip| ip.is_loopback());
    if net.loopback_only() && !loopback {
        return Err(HttpError::Config(format!(
            "refused endpoint {shown}: not a loopback address and {LOOPBACK_ONLY_ENV}=1 (map its range into 127.0.0.0/8 with {})",
            cairn_core::net::ADDR_MAP_ENV
        )));
    }
    if url.scheme() == "http" && !loopback {
        return Err(HttpError::Config(format!(
            "refused endpoint {shown}: plain http:// is allowed only to loopback; use https://"
        )));
    }
    if let (Some(to), Some(from)) = (dialled, host_ip(&url))
        && to != from
        && url.set_ip_host(to).is_err()
    {
        return Err(HttpError::Config(format!(
            "endpoint {shown}: cannot map to {to}"
        )));
    }
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(&path);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(map: &str, loopback_only: bool) -> Dialer {
        Dialer::new(map.parse().unwrap(), loopback_only)
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback_url("http://127.0.0.1:8080/v1"));
        assert!(is_loopback_url("http://127.5.0.1/v1"));
        assert!(is_loopback_url("http://localhost:1/v1"));
        assert!(is_loopback_url("http://[::1]:1/v1"));
        assert!(!is_loopback_url("https://api.hetzner.cloud/v1"));
        assert!(!is_loopback_url("http://10.0.0.1/v1"));
    }

    #[test]
    fn mapped_endpoints_are_dialled_on_loopback() {
        let n = net("10.0.0.0/8=127.0.0.0/8", true);
        let u = resolve_endpoint("https://10.0.20.1:8443/api/v2/", &n).unwrap();
        assert_eq!(u.as_str(), "https://127.0.20.1:8443/api/v2");
        let u = resolve_endpoint("http://10.0.20.1:80", &n).unwrap();
        assert_eq!(
            u.host_str(),
            Some("127.0.20.1"),
            "plain http to a mapped range is local"
        );
    }

    #[test]
    fn the_loopback_only_switch_refuses_remote_endpoints() {
        let n = net("10.0.0.0/8=127.0.0.0/8", true);
        for remote in [
            "https://192.168.1.1",
            "https://api.hetzner.cloud/v1",
            "https://[2001:db8::1]/",
        ] {
            let e = resolve_endpoint(remote, &n).unwrap_err();
            assert!(e.to_string().contains("not a loopback address"), "{e}");
        }
        assert!(resolve_endpoint("https://localhost:8006", &n).is_ok());
        assert!(resolve_endpoint("https://192.168.1.1", &net("", false)).is_ok());
    }

    #[test]
    fn plain_http_is_refused_for_non_loopback_hosts() {
        let n = net("", false);
        for remote in ["http://10.1.2.3:9/", "http://api.hetzner.cloud/v1"] {
            let e = resolve_endpoint(remote, &n).unwrap_err();
            assert!(e.to_string().contains("plain http"), "{e}");
        }
        assert!(resolve_endpoint("http://127.0.0.1:9/", &n).is_ok());
        assert!(resolve_endpoint("ftp://127.0.0.1/", &n).is_err());
    }
}
