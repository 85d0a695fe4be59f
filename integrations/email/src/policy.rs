//! Who may hand Hopper a task by mail. The From header is whatever the sender typed, so the
//! allowlist also checks the SMTP envelope when there is one, and `require_authenticated`
//! trusts only the verdict the MTA in front wrote (RFC 8601 `Authentication-Results`): Hopper
//! verifies no DKIM signature itself.

use mail_parser::{HeaderName, Message};

use crate::EmailConfig;
use crate::parse::sender_allowed;

/// `Err` is the reason the message is refused, worded for the sender and the event log.
pub(crate) fn admit(
    config: &EmailConfig,
    msg: &Message<'_>,
    sender: &str,
    mail_from: Option<&str>,
) -> Result<(), String> {
    if !sender_allowed(&config.allowed_senders, sender) {
        return Err(format!("sender `{sender}` is not on the allowlist"));
    }
    if let Some(envelope) = mail_from
        && !sender_allowed(&config.allowed_senders, envelope)
    {
        let shown = if envelope.is_empty() { "<>" } else { envelope };
        return Err(format!("envelope sender `{shown}` is not on the allowlist"));
    }
    if config.require_authenticated {
        // `validate` refuses this at start-up; a config built in code still fails closed.
        let Some(authserv_id) = config.authserv_id() else {
            return Err("not authenticated: no authserv_id is configured".into());
        };
        authenticated(authserv_id, msg, sender)?;
    }
    Ok(())
}

fn authenticated(authserv_id: &str, msg: &Message<'_>, sender: &str) -> Result<(), String> {
    // A verifier checks one From header; with two, the one shown could be the unsigned one.
    let froms = msg
        .headers()
        .iter()
        .filter(|h| h.name == HeaderName::From)
        .count();
    if froms != 1 {
        return Err("not authenticated: the message must have exactly one From header".into());
    }
    let Some(domain) = domain_of(sender) else {
        return Err("not authenticated: the message has no From address".into());
    };
    let mut reported = false;
    let ours = msg
        .headers_raw()
        .filter(|(name, _)| name.eq_ignore_ascii_case("Authentication-Results"))
        .filter_map(|(_, value)| AuthResults::parse(value))
        .filter(|r| r.authserv_id.eq_ignore_ascii_case(authserv_id));
    for results in ours {
        reported = true;
        if results.vouches_for(&domain) {
            return Ok(());
        }
    }
    Err(if reported {
        format!(
            "not authenticated: {authserv_id} reports neither dkim=pass nor spf=pass \
             for {domain}"
        )
    } else {
        format!("not authenticated: no Authentication-Results from {authserv_id}")
    })
}

/// The domain of an address (or of a bare domain, as `smtp.mailfrom` may be), lowercased.
fn domain_of(addr: &str) -> Option<String> {
    let domain = addr.rsplit_once('@').map_or(addr, |(_, d)| d);
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    (!domain.is_empty()).then_some(domain)
}

/// Whether a result for `authenticated` speaks for mail from `from`: the same domain or a
/// parent of it, never a bare top-level label.
fn aligned(authenticated: &str, from: &str) -> bool {
    authenticated.contains('.')
        && (from == authenticated
            || from
                .strip_suffix(authenticated)
                .is_some_and(|rest| rest.ends_with('.')))
}

/// One `Authentication-Results` field.
#[derive(Debug, PartialEq)]
struct AuthResults {
    authserv_id: String,
    results: Vec<MethodResult>,
}

/// `dkim=pass header.d=example.com`: method and result lowercased, properties as written
/// (keys lowercased).
#[derive(Debug, PartialEq)]
struct MethodResult {
    method: String,
    result: String,
    props: Vec<(String, String)>,
}

impl AuthResults {
    /// `None` when the field names no authserv-id.
    fn parse(value: &str) -> Option<Self> {
        let mut segments = tokenize(value).into_iter();
        let authserv_id = segments.next()?.into_iter().next()?;
        let results = segments.filter_map(MethodResult::parse).collect();
        Some(Self {
            authserv_id,
            results,
        })
    }

    fn vouches_for(&self, from_domain: &str) -> bool {
        self.results.iter().any(|r| {
            let keys: &[&str] = match (r.method.as_str(), r.result.as_str()) {
                ("dkim", "pass") => &["header.d", "header.i"],
                ("spf", "pass") => &["smtp.mailfrom"],
                _ => return false,
            };
            r.props
                .iter()
                .filter(|(k, _)| keys.contains(&k.as_str()))
                .filter_map(|(_, v)| domain_of(v))
                .any(|d| aligned(&d, from_domain))
        })
    }
}

impl MethodResult {
    /// From the tokens of one `;`-separated resinfo; `None` for `none` and other noise.
    fn parse(tokens: Vec<String>) -> Option<Self> {
        let mut pairs = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            if tokens.get(i + 1).is_some_and(|t| t == "=") {
                let value = tokens.get(i + 2).cloned().unwrap_or_default();
                pairs.push((tokens[i].to_ascii_lowercase(), value));
                i += 3;
            } else {
                i += 1;
            }
        }
        let mut pairs = pairs.into_iter();
        let (method, result) = pairs.next()?;
        // `dkim/1=pass`: a method version does not change what the result means.
        let method = method
            .split('/')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        Some(Self {
            method,
            result: result.to_ascii_lowercase(),
            props: pairs.collect(),
        })
    }
}

/// Splits a field body into `;`-separated segments of tokens, with `=` a token of its own,
/// comments dropped and quoted strings unquoted (RFC 8601 allows CFWS almost anywhere, e.g.
/// `dkim=pass (2048-bit key) header.d=example.com`).
fn tokenize(value: &str) -> Vec<Vec<String>> {
    let mut segments = vec![Vec::new()];
    let mut token = String::new();
    let mut chars = value.chars();
    let flush = |token: &mut String, segments: &mut Vec<Vec<String>>| {
        if !token.is_empty()
            && let Some(segment) = segments.last_mut()
        {
            segment.push(std::mem::take(token));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '(' => {
                flush(&mut token, &mut segments);
                let mut depth = 1;
                while depth > 0 {
                    match chars.next() {
                        Some('(') => depth += 1,
                        Some(')') => depth -= 1,
                        Some('\\') => {
                            chars.next();
                        }
                        Some(_) => {}
                        None => break,
                    }
                }
            }
            '"' => loop {
                match chars.next() {
                    Some('"') | None => break,
                    Some('\\') => token.extend(chars.next()),
                    Some(c) => token.push(c),
                }
            },
            ';' => {
                flush(&mut token, &mut segments);
                segments.push(Vec::new());
            }
            '=' => {
                flush(&mut token, &mut segments);
                token.push('=');
                flush(&mut token, &mut segments);
            }
            c if c.is_whitespace() => flush(&mut token, &mut segments),
            c => token.push(c),
        }
    }
    flush(&mut token, &mut segments);
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vouches(field: &str, from: &str) -> bool {
        AuthResults::parse(field).is_some_and(|r| r.vouches_for(from))
    }

    #[test]
    fn parses_comments_quotes_versions_and_folding() {
        let r = AuthResults::parse(
            " mx.example.com 1 (our MX);\r\n\tdkim = pass (2048-bit key; unprotected)\r\n \
             header.d=Example.COM header.s=\"sel;1\"; spf=fail smtp.mailfrom=x@y.z; none",
        )
        .unwrap();
        assert_eq!(r.authserv_id, "mx.example.com");
        assert_eq!(r.results.len(), 2, "{r:?}");
        assert_eq!(r.results[0].method, "dkim");
        assert_eq!(r.results[0].result, "pass");
        assert_eq!(
            r.results[0].props,
            [
                ("header.d".to_owned(), "Example.COM".to_owned()),
                ("header.s".to_owned(), "sel;1".to_owned())
            ]
        );
        assert_eq!(r.results[1].result, "fail");
        assert_eq!(AuthResults::parse("  (only a comment)"), None);
    }

    #[test]
    fn dkim_or_spf_pass_for_the_from_domain_or_a_parent() {
        let from = "mail.example.com";
        assert!(vouches("mx; dkim=pass header.d=example.com", from));
        assert!(vouches("mx; dkim=pass header.d=mail.example.com", from));
        assert!(vouches("mx; dkim=pass header.i=@mail.example.com", from));
        assert!(vouches("mx; dkim/1=PASS header.i=ana@Example.com.", from));
        assert!(vouches("mx; spf=pass smtp.mailfrom=b@example.com", from));
        assert!(vouches("mx; spf=pass smtp.mailfrom=example.com", from));
        assert!(!vouches("mx; dkim=fail header.d=example.com", from));
        assert!(!vouches("mx; dkim=pass header.d=notexample.com", from));
        assert!(!vouches(
            "mx; dkim=pass header.d=other.mail.example.com",
            from
        ));
        assert!(!vouches("mx; dkim=pass header.d=com", from));
        assert!(!vouches("mx; spf=pass smtp.helo=example.com", from));
        assert!(!vouches("mx; dkim=pass", from));
        assert!(!vouches("mx; none", from));
        // A signature's domain in a comment is not a property.
        assert!(!vouches("mx; dkim=pass (header.d=example.com)", from));
    }

    fn admit_raw(config: &EmailConfig, raw: &[u8], mail_from: Option<&str>) -> Result<(), String> {
        let msg = mail_parser::MessageParser::default().parse(raw).unwrap();
        let sender = crate::parse::from_address(&msg);
        admit(config, &msg, &sender, mail_from)
    }

    #[test]
    fn only_the_configured_authserv_id_counts() {
        let config = EmailConfig {
            require_authenticated: true,
            authserv_id: Some("mx.example.com".into()),
            ..EmailConfig::default()
        };
        let mail = |ar: &str| {
            format!(
                "Authentication-Results: {ar}\r\nFrom: ana@example.com\r\nSubject: s\r\n\r\nhi\r\n"
            )
        };
        let ok = mail("MX.example.com; dkim=pass header.d=example.com");
        assert_eq!(admit_raw(&config, ok.as_bytes(), None), Ok(()));
        let forged = mail("mx.attacker.net; dkim=pass header.d=example.com");
        let why = admit_raw(&config, forged.as_bytes(), None).unwrap_err();
        assert!(
            why.contains("no Authentication-Results from mx.example.com"),
            "{why}"
        );
        let failed = mail("mx.example.com; dkim=fail header.d=example.com");
        let why = admit_raw(&config, failed.as_bytes(), None).unwrap_err();
        assert!(why.contains("neither dkim=pass nor spf=pass"), "{why}");
        let two_froms = format!("From: eve@evil.example\r\n{ok}");
        assert!(admit_raw(&config, two_froms.as_bytes(), None).is_err());
        let unconfigured = EmailConfig {
            authserv_id: Some(" ".into()),
            ..config
        };
        assert!(unconfigured.validate().is_err());
        assert!(admit_raw(&unconfigured, ok.as_bytes(), None).is_err());
    }

    #[test]
    fn envelope_sender_must_be_allowed_too() {
        let config = EmailConfig {
            allowed_senders: vec!["*@example.com".into()],
            ..EmailConfig::default()
        };
        let raw = b"From: ana@example.com\r\nSubject: s\r\n\r\nhi\r\n";
        assert_eq!(admit_raw(&config, raw, None), Ok(()));
        assert_eq!(admit_raw(&config, raw, Some("bounce@example.com")), Ok(()));
        let why = admit_raw(&config, raw, Some("eve@evil.example")).unwrap_err();
        assert!(why.contains("envelope sender `eve@evil.example`"), "{why}");
        let why = admit_raw(&config, raw, Some("")).unwrap_err();
        assert!(why.contains("`<>`"), "{why}");
        assert_eq!(
            admit_raw(&EmailConfig::default(), raw, Some("")),
            Ok(()),
            "no allowlist: bounces too"
        );
    }
}
