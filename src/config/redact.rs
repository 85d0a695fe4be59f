//! What of a configuration may leave the process. The registry rows, and through them the API
//! and the CLI, get a copy in which every value that came from a `${VAR}` shows the text the
//! file wrote, and, as a second net for values written into the file itself or into older
//! rows, anything a key name or a URL marks as secret is masked.

use std::fmt;

use serde_json::Value;

use super::HopperConfig;

/// What a hidden value is shown as.
pub const MASK: &str = "***";

/// A string the file wrote with `${VAR}`: where it sits in the file's tree, and the text as
/// written. The expanded value is exactly what must not be shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Expanded {
    pub path: Vec<String>,
    pub template: String,
}

impl HopperConfig {
    /// The form kept in the instance registry (and so shown by the API and the CLI).
    pub fn registry_json(&self) -> Value {
        // Serialising plain structs and string-keyed maps cannot fail; `Null` would only hide
        // the configuration, never leak it.
        let mut v = serde_json::to_value(self).unwrap_or_default();
        for e in &self.expanded {
            if let Some(slot) = lookup(&mut v, &e.path)
                && !slot.is_null()
            {
                *slot = Value::String(e.template.clone());
            }
        }
        redact_json(&mut v);
        v
    }

    /// An override (flag or `HOPPER_*`) replaced this value: it is no longer the file's text.
    pub(super) fn forget_expanded(&mut self, path: &[&str]) {
        self.expanded.retain(|e| !e.path.iter().eq(path.iter()));
    }
}

/// A derived `Debug` would print URLs with passwords and the raw `inbound` sections.
impl fmt::Debug for HopperConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HopperConfig({})", self.registry_json())
    }
}

fn lookup<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, key| match v {
        Value::Object(m) => m.get_mut(key),
        Value::Array(a) => a.get_mut(key.parse::<usize>().ok()?),
        _ => None,
    })
}

/// Masks what a key name or a URL gives away as secret; true when anything changed. Applied to
/// every configuration read from the registry, so rows written before this existed do not
/// leak either.
pub fn redact_json(v: &mut Value) -> bool {
    match v {
        Value::Object(m) => {
            let mut changed = false;
            for (k, child) in m.iter_mut() {
                changed |= if is_secret_key(k) {
                    mask(child)
                } else {
                    redact_json(child)
                };
            }
            changed
        }
        Value::Array(a) => a.iter_mut().fold(false, |c, child| redact_json(child) | c),
        Value::String(s) => match mask_url_passwords(s) {
            Some(masked) => {
                *s = masked;
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// Unset (`null`, `""`) stays visible: whether a secret is configured is not itself secret.
fn mask(v: &mut Value) -> bool {
    let hidden = match v {
        Value::Null => true,
        Value::String(s) => s.is_empty() || s == MASK,
        _ => false,
    };
    if !hidden {
        *v = Value::String(MASK.into());
    }
    !hidden
}

const SECRET_KEYS: &[&str] = &[
    "secret",
    "token",
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "api_key",
    "apikey",
    "private_key",
    "access_key",
    "secret_key",
    "credentials",
    "authorization",
    "cookie",
];

const SECRET_SUFFIXES: &[&str] = &[
    "_secret",
    "_token",
    "_password",
    "_passwd",
    "_passphrase",
    "_api_key",
    "_apikey",
    "_private_key",
    "_access_key",
    "_secret_key",
    "_credentials",
];

/// `secret`, `token`, `password`, `api_key`, ... and `*_secret`, `*_token`, ... in any case,
/// with `-` or `_`.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace('-', "_");
    SECRET_KEYS.contains(&k.as_str()) || SECRET_SUFFIXES.iter().any(|s| k.ends_with(s))
}

/// `scheme://user:PASS@host` → `scheme://user:***@host`, and `password=PASS` (libpq key/value
/// strings, URL query parameters) → `password=***`, wherever they occur in `s`. `None` when
/// there was nothing to mask.
pub fn mask_url_passwords(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority
            .rfind('@')
            .and_then(|at| Some((at, authority[..at].find(':')?)))
        {
            Some((at, colon)) if &authority[colon + 1..at] != MASK => {
                out.push_str(&authority[..=colon]);
                out.push_str(MASK);
                out.push_str(&authority[at..]);
                changed = true;
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    match mask_password_params(&out) {
        Some(masked) => Some(masked),
        None => changed.then_some(out),
    }
}

fn mask_password_params(s: &str) -> Option<String> {
    const KEY: &str = "password=";
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut from = 0;
    while let Some(found) = lower[from..].find(KEY) {
        let start = from + found;
        let value_at = start + KEY.len();
        let standalone = s[..start]
            .chars()
            .next_back()
            .is_none_or(|c| matches!(c, '?' | '&' | ';') || c.is_whitespace());
        let len = s[value_at..]
            .find(|c: char| matches!(c, '&' | ';' | '#') || c.is_whitespace())
            .unwrap_or(s.len() - value_at);
        let value = &s[value_at..value_at + len];
        out.push_str(&s[from..value_at]);
        if standalone && !value.is_empty() && value != MASK {
            out.push_str(MASK);
            changed = true;
        } else {
            out.push_str(value);
        }
        from = value_at + len;
    }
    out.push_str(&s[from..]);
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn url_passwords_are_masked_wherever_they_are() {
        let m = |s: &str| mask_url_passwords(s);
        assert_eq!(
            m("postgres://hopper:s3cr3t@db:5432/hopper").as_deref(),
            Some("postgres://hopper:***@db:5432/hopper")
        );
        assert_eq!(
            m("a https://x:p@h/ and postgresql://u:p:q@h?sslmode=require").as_deref(),
            Some("a https://x:***@h/ and postgresql://u:***@h?sslmode=require")
        );
        assert_eq!(
            m("postgres://u@h/db?sslmode=require&password=pw").as_deref(),
            Some("postgres://u@h/db?sslmode=require&password=***")
        );
        assert_eq!(
            m("host=db user=u PASSWORD=pw dbname=x").as_deref(),
            Some("host=db user=u PASSWORD=*** dbname=x")
        );
        for clean in [
            "postgres://u@h/db",
            "postgres://u:***@h/db",
            "sqlite:/tmp/x.db",
            "user@example.com:22",
            "reset_password=1",
            "",
        ] {
            assert_eq!(m(clean), None, "{clean}");
        }
    }

    #[test]
    fn secret_keys_are_recognised_by_name() {
        for k in [
            "secret",
            "token",
            "signing_secret",
            "admin_token",
            "api_key",
            "Password",
            "client-secret",
            "GITHUB_TOKEN",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["tls_key", "max_tokens", "secrets_dir", "command", "url"] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn redaction_masks_set_secrets_and_keeps_unset_ones_visible() {
        let mut v = json!({
            "inbound": {"github": {"secret": "gh", "max_body_bytes": 10},
                        "email": {"token": "", "smtp": {"bind": null}},
                        "http": {"alerts": {"secret": "whsec_x", "title": "/a"}}},
            "integrations": {"github": {"token": "[redacted]", "enabled": true}},
            "persistence": {"url": "postgres://u:pw@h/db"},
            "list": [{"api_key": 7}]
        });
        assert!(redact_json(&mut v));
        assert_eq!(
            v,
            json!({
                "inbound": {"github": {"secret": "***", "max_body_bytes": 10},
                            "email": {"token": "", "smtp": {"bind": null}},
                            "http": {"alerts": {"secret": "***", "title": "/a"}}},
                "integrations": {"github": {"token": "***", "enabled": true}},
                "persistence": {"url": "postgres://u:***@h/db"},
                "list": [{"api_key": "***"}]
            })
        );
        assert!(!redact_json(&mut v), "idempotent");
    }
}
