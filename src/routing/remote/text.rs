//! Small helpers of the remote clients: trimming text for traces and reasons, describing a
//! failed request in one line, reading a bounded body.

/// `s` cut to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` on one line (whitespace runs become one space), at most `max_chars` characters, with
/// "…" when cut: for reasons shown to users.
pub fn one_line(s: &str, max_chars: usize) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max_chars {
        return flat;
    }
    let mut cut: String = flat.chars().take(max_chars).collect();
    cut.push('…');
    cut
}

/// Why a request failed, in one line: "timed out after N ms", "could not reach URL: ...".
pub fn describe_send_error(e: &reqwest::Error, url: &str, timeout_ms: u64) -> String {
    if e.is_timeout() {
        return format!("timed out after {timeout_ms} ms");
    }
    // The innermost cause says what happened ("Connection refused (os error 111)").
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let what = if e.is_connect() {
        "could not reach"
    } else {
        "request failed to"
    };
    format!("{what} {url}: {}", one_line(&cause.to_string(), 200))
}

/// Milliseconds since `start`.
pub fn elapsed_ms(start: std::time::Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Reads a response body, at most `max` bytes (the rest is dropped). `Err` is a reason.
pub async fn read_body(
    mut resp: reqwest::Response,
    max: usize,
    url: &str,
    timeout_ms: u64,
) -> Result<String, String> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = max.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if buf.len() >= max {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => return Err(describe_send_error(&e, url, timeout_ms)),
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 8), "abc");
        assert_eq!(one_line("a\n  b", 10), "a b");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }
}
