//! The chat-completions wire format: the endpoint, an answer's first choice, an HTTP error.

use serde_json::Value;

use super::LlmError;
use crate::routing::remote::one_line;

/// `{base_url}/chat/completions`, for an http(s) base URL with or without a trailing slash.
pub fn endpoint(base_url: &str) -> Result<String, LlmError> {
    let bad = |reason: String| LlmError::BadBaseUrl {
        url: base_url.to_owned(),
        reason,
    };
    let parsed = reqwest::Url::parse(base_url.trim()).map_err(|e| bad(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(format!(
            "scheme `{}` is not http or https",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none() {
        return Err(bad("it has no host".to_owned()));
    }
    Ok(format!(
        "{}/chat/completions",
        base_url.trim().trim_end_matches('/')
    ))
}

/// "HTTP 500: <the error message, or the first 200 characters of the body>".
pub fn http_error(status: u16, body: &str) -> String {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned());
    let message = one_line(&message, 200);
    if message.is_empty() {
        format!("HTTP {status} with an empty body")
    } else {
        format!("HTTP {status}: {message}")
    }
}

pub struct Completion {
    pub content: String,
    pub model: Option<String>,
    pub usage: Option<Value>,
}

/// The first choice's message of a chat.completion body.
pub fn completion(body: &str, max_tokens: u32) -> Result<Completion, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("answer is not JSON: {e}"))?;
    let choice = &v["choices"][0];
    if choice["finish_reason"].as_str() == Some("length") {
        return Err(format!("answer cut off at max_tokens ({max_tokens})"));
    }
    let Some(content) = choice["message"]["content"].as_str() else {
        return Err("answer has no choices[0].message.content".to_owned());
    };
    Ok(Completion {
        content: content.to_owned(),
        model: v["model"].as_str().map(str::to_owned),
        usage: v.get("usage").filter(|u| !u.is_null()).cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_tolerates_a_trailing_slash_and_refuses_non_http() {
        assert_eq!(
            endpoint("https://api.openai.com/v1/").unwrap(),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            endpoint("http://127.0.0.1:9/v1").unwrap(),
            "http://127.0.0.1:9/v1/chat/completions"
        );
        assert!(endpoint("ftp://x/v1").is_err());
        assert!(endpoint("not a url").is_err());
    }

    #[test]
    fn completions_and_http_errors_are_read() {
        let body = r#"{"id":"c","object":"chat.completion","model":"m-1","choices":[{"index":0,
            "message":{"role":"assistant","content":"{}"},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#;
        let c = completion(body, 10).unwrap();
        assert_eq!(
            (c.content.as_str(), c.model.as_deref()),
            ("{}", Some("m-1"))
        );
        assert_eq!(c.usage.unwrap()["total_tokens"], 3);
        let cut = body.replace("\"stop\"", "\"length\"");
        assert_eq!(
            completion(&cut, 10).err().unwrap(),
            "answer cut off at max_tokens (10)"
        );
        assert_eq!(
            http_error(
                401,
                r#"{"error":{"message":"bad key","type":"x","code":"y"}}"#
            ),
            "HTTP 401: bad key"
        );
        assert_eq!(http_error(500, "boom\nboom"), "HTTP 500: boom boom");
        assert_eq!(http_error(502, ""), "HTTP 502 with an empty body");
    }
}
