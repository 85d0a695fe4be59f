//! What the dashboard never shows: signatures, tokens and secrets, whether they sit in a
//! stored event's headers or in its JSON body. Names are matched loosely on purpose: showing
//! `[redacted]` for a harmless field costs nothing, leaking a signing secret does.

use serde_json::Value;

pub const REDACTED: &str = "[redacted]";

const SECRET_WORDS: &[&str] = &[
    "signature",
    "token",
    "secret",
    "password",
    "passwd",
    "authorization",
    "cookie",
    "api-key",
    "api_key",
    "apikey",
    "private",
    "credential",
    "hmac",
    // Slack's slash-command `response_url` lets whoever holds it post to the channel.
    "response_url",
];

/// Whether a header or field of this name may carry a secret.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| n.contains(w))
}

/// A JSON value with every secret-looking field replaced.
pub fn value(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let shown = if is_secret_name(k) && !v.is_object() && !v.is_array() {
                        Value::from(REDACTED)
                    } else {
                        value(v)
                    };
                    (k.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(value).collect()),
        other => other.clone(),
    }
}

/// Stored headers (a JSON object or a list of pairs) as name/value rows, secrets redacted.
pub fn headers(h: &Value) -> Vec<(String, String)> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut rows: Vec<(String, String)> = match h {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        Value::Array(a) => a
            .iter()
            .filter_map(|p| match p {
                Value::Array(kv) if kv.len() == 2 => Some((text(&kv[0]), text(&kv[1]))),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    for (k, v) in &mut rows {
        if is_secret_name(k) {
            *v = REDACTED.to_owned();
        }
    }
    rows
}

/// A URL without what may carry a credential: its user info and its query (`?token=…`).
pub fn url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut parsed) => {
            let had_query = parsed.query().is_some();
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            let mut shown = parsed.to_string();
            if had_query {
                shown.push_str("?…");
            }
            shown
        }
        Err(_) => REDACTED.to_owned(),
    }
}

/// A raw body for display: pretty JSON with secrets redacted; a form (Slack's slash commands,
/// GitHub's form mode) as `name=value` lines with secret values redacted and a JSON `payload`
/// field redacted as JSON; anything else (an email) as received.
pub fn body(raw: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(raw) {
        return serde_json::to_string_pretty(&value(&v)).unwrap_or_default();
    }
    let looks_like_form = !raw.contains(char::is_whitespace) && raw.contains('=');
    match serde_urlencoded::from_str::<Vec<(String, String)>>(raw) {
        Ok(pairs) if looks_like_form && !pairs.is_empty() => pairs
            .into_iter()
            .map(|(k, v)| {
                let shown = if is_secret_name(&k) {
                    REDACTED.to_owned()
                } else if k == "payload" {
                    body(&v)
                } else {
                    v
                };
                format!("{k}={shown}")
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_are_redacted_too() {
        let slack = "token=gIkuvaNzQIHg97ATvDxqgjtO&team_id=T1&text=deploy&response_url=\
                     https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1%2F2";
        let shown = body(slack);
        assert!(
            !shown.contains("gIkuvaNz") && !shown.contains("hooks.slack.com"),
            "{shown}"
        );
        assert!(shown.contains("text=deploy"), "{shown}");
        let github = "payload=%7B%22hook%22%3A%7B%22secret%22%3A%22whsec_x%22%7D%7D";
        let shown = body(github);
        assert!(
            !shown.contains("whsec_x") && shown.contains("hook"),
            "{shown}"
        );
        assert_eq!(
            body("Subject: hi\n\nplain mail"),
            "Subject: hi\n\nplain mail"
        );
    }

    #[test]
    fn secrets_are_replaced_wherever_they_sit() {
        let v = serde_json::json!({"a": 1, "hook": {"secret": "whsec_x", "url": "u"},
            "list": [{"access_token": "t"}], "Webhook-Signature": "v1,abc"});
        let shown = body(&v.to_string());
        assert!(!shown.contains("whsec_x") && !shown.contains("v1,abc"));
        assert!(!shown.contains("\"t\""));
        assert!(shown.contains("\"url\": \"u\""));
        let h = headers(&serde_json::json!({"X-Hub-Signature-256": "sha256=1", "x-a": "b"}));
        assert!(h.iter().all(|(_, v)| v != "sha256=1"));
        assert!(h.contains(&("x-a".into(), "b".into())));
        assert_eq!(
            url("https://bot:pw@hooks.example/in?token=abc"),
            "https://hooks.example/in?…"
        );
    }
}
