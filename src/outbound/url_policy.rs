//! Where executor webhooks may point (SSRF protection).
//!
//! A webhook URL is http or https, names a host, carries no userinfo, and every address its
//! host resolves to is public unicast — not loopback, private, link-local, shared, reserved,
//! documentation, multicast or a cloud metadata endpoint ([`AddressClass`]) — unless the
//! allowlist (`outbound.allowlist`, `HOPPER_OUTBOUND_ALLOWLIST`) names the host or a network
//! holding the address. Local executors are a real use case, hence an allowlist rather than a
//! switch.
//!
//! Two checks, because DNS can change between them:
//! - [`UrlPolicy::check`] at registration and before every send: parses the URL, resolves the
//!   host and refuses any disallowed answer, with a message saying how to allow it. It is the
//!   only check an IP-literal URL gets: reqwest does not call a resolver for those, so the
//!   delivery worker must call `check` before each send.
//! - The [`UrlPolicy::client`] resolver re-resolves at connect time and fails the connection
//!   when any answer is disallowed, so a name that rebinds to a private address after `check`
//!   still cannot reach it. That client never follows redirects (a 3xx is an answer, retried
//!   like any other failure) and never uses a proxy from the environment.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::HeaderValue;
use url::Host;

pub use super::address::AddressClass;
use super::address::{classify, embedded_v4};

/// Host names refused even before resolving: they answer with cloud credentials.
const METADATA_HOSTS: &[&str] = &["metadata.google.internal", "metadata"];

const HOW_TO_ALLOW: &str =
    "allow it with `outbound.allowlist` in the config or HOPPER_OUTBOUND_ALLOWLIST";

/// An allowlist entry that is neither a CIDR, an address nor a host name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "outbound allowlist entry `{entry}` is not a CIDR (127.0.0.0/8), an address or a host name"
)]
pub struct UrlPolicyError {
    pub entry: String,
}

/// Why a webhook URL is refused. The API answers 422 with this message.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum UrlRefused {
    #[error("webhook URL is not a valid URL: {0}")]
    Invalid(String),
    #[error("webhook URL scheme `{0}` is not allowed: use http or https")]
    Scheme(String),
    #[error("webhook URL must not carry a user name or password")]
    Userinfo,
    #[error("webhook URL has no host")]
    NoHost,
    #[error("webhook URL host `{host}` does not resolve: {reason}")]
    Unresolvable { host: String, reason: String },
    #[error("webhook URL host `{host}` is a cloud metadata endpoint; {HOW_TO_ALLOW} (`{host}`)")]
    MetadataHost { host: String },
    #[error(
        "webhook URL host `{host}` is {addr}, a {class} address; {HOW_TO_ALLOW} \
         (`{host}` or `{addr}`)"
    )]
    Disallowed {
        host: String,
        addr: IpAddr,
        class: AddressClass,
    },
}

impl UrlRefused {
    /// Whether trying again later may succeed: DNS failures are often passing, the rest is a
    /// property of the URL or of where it points.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unresolvable { .. })
    }
}

/// A URL that passed [`UrlPolicy::check`], with the addresses its host resolved to then.
#[derive(Debug, Clone)]
pub struct CheckedUrl {
    url: Url,
    addrs: Vec<SocketAddr>,
}

impl CheckedUrl {
    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub fn into_url(self) -> Url {
        self.url
    }
}

#[derive(Debug, Default)]
struct Allowlist {
    nets: Vec<IpNet>,
    /// Lowercase, without a trailing dot.
    hosts: Vec<String>,
}

impl Allowlist {
    fn allows_host(&self, host: &str) -> bool {
        let host = normalise_host(host);
        self.hosts.contains(&host)
    }

    fn allows_addr(&self, ip: IpAddr) -> bool {
        let v4 = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.nets
            .iter()
            .any(|n| n.contains(&ip) || v4.is_some_and(|v4| n.contains(&v4)))
    }

    /// Refuses the first address that is disallowed and not allowlisted.
    fn judge(&self, host: &str, addrs: &[SocketAddr]) -> Result<(), UrlRefused> {
        if self.allows_host(host) {
            return Ok(());
        }
        if METADATA_HOSTS.contains(&normalise_host(host).as_str()) {
            return Err(UrlRefused::MetadataHost { host: host.into() });
        }
        for addr in addrs {
            let ip = addr.ip();
            if let Some(class) = classify(ip)
                && !self.allows_addr(ip)
            {
                return Err(UrlRefused::Disallowed {
                    host: host.into(),
                    addr: ip,
                    class,
                });
            }
        }
        Ok(())
    }
}

fn normalise_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn parse_entry(entry: &str) -> Option<Result<IpNet, String>> {
    let e = entry.trim();
    if e.is_empty() {
        return None;
    }
    if let Ok(net) = e.parse::<IpNet>() {
        return Some(Ok(net.trunc()));
    }
    if let Ok(ip) = e
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Some(Ok(IpNet::from(ip)));
    }
    Some(Err(normalise_host(e)))
}

fn valid_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, UrlRefused> {
    let unresolvable = |reason: String| UrlRefused::Unresolvable {
        host: host.into(),
        reason,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| unresolvable(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(unresolvable("no addresses".into()));
    }
    Ok(addrs)
}

/// The allowlist and the checks built on it. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct UrlPolicy {
    allow: Arc<Allowlist>,
}

impl UrlPolicy {
    /// Entries are CIDRs (`127.0.0.0/8`, `::1/128`), addresses (`10.1.2.3`) or host names
    /// (`executor.internal`, matched exactly, case-insensitively). Blank entries are skipped.
    pub fn new(allowlist: &[String]) -> Result<UrlPolicy, UrlPolicyError> {
        let mut allow = Allowlist::default();
        for entry in allowlist {
            match parse_entry(entry) {
                None => {}
                Some(Ok(net)) => allow.nets.push(net),
                Some(Err(host)) if valid_host_name(&host) => allow.hosts.push(host),
                Some(Err(_)) => {
                    return Err(UrlPolicyError {
                        entry: entry.clone(),
                    });
                }
            }
        }
        Ok(UrlPolicy {
            allow: Arc::new(allow),
        })
    }

    /// Parses `url`, resolves its host and refuses it unless every address is allowed.
    pub async fn check(&self, url: &str) -> Result<CheckedUrl, UrlRefused> {
        let url = Url::parse(url.trim()).map_err(|e| UrlRefused::Invalid(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlRefused::Scheme(url.scheme().into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlRefused::Userinfo);
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let (host, addrs) = match url.host() {
            None => return Err(UrlRefused::NoHost),
            Some(Host::Ipv4(ip)) => (ip.to_string(), vec![SocketAddr::new(ip.into(), port)]),
            Some(Host::Ipv6(ip)) => (ip.to_string(), vec![SocketAddr::new(ip.into(), port)]),
            Some(Host::Domain(name)) => {
                if name.is_empty() {
                    return Err(UrlRefused::NoHost);
                }
                // An allowlisted or metadata name is decided by its name alone.
                self.allow.judge(name, &[])?;
                (name.to_string(), resolve(name, port).await?)
            }
        };
        self.allow.judge(&host, &addrs)?;
        Ok(CheckedUrl { url, addrs })
    }

    /// The HTTP client for deliveries: this policy enforced at connect time by its resolver,
    /// no redirects, no proxy, `timeout` for a whole attempt, pooled connections for many
    /// executors, https through rustls with the Mozilla roots plus `extra_roots`.
    pub fn client(
        &self,
        timeout: Duration,
        extra_roots: Vec<reqwest::Certificate>,
    ) -> Result<reqwest::Client, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(false)
            .dns_resolver(Arc::new(PolicyResolver {
                allow: self.allow.clone(),
            }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(32)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .user_agent(HeaderValue::from_static(concat!(
                "hopper/",
                env!("CARGO_PKG_VERSION")
            )));
        for root in extra_roots {
            builder = builder.add_root_certificate(root);
        }
        builder.build()
    }
}

/// reqwest's resolver for [`UrlPolicy::client`]: resolves, then refuses the whole answer if any
/// address is disallowed (a partial answer would let a rebinding name pick the private one).
struct PolicyResolver {
    allow: Arc<Allowlist>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let host = name.as_str();
            allow.judge(host, &[])?;
            let addrs = resolve(host, 0).await?;
            allow.judge(host, &addrs)?;
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}
