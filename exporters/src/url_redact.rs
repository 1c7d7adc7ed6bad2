//! [`redact_url`]: the one way a destination URL is shown in `Debug`, `Display` and logs.

/// What replaces a credential in a shown URL.
const MASK: &str = "[REDACTED]";

/// The URL with its userinfo and every query and fragment value replaced by `[REDACTED]`, for
/// `Debug`, `Display` and log lines. Scheme, host, port, path and parameter names stay, so the
/// user can still tell which destination is meant. Works on text that is not a valid URL too
/// (an invalid setting is shown the same way); already redacted text is left as it is.
///
/// ```
/// use closedloop_telemetry_exporters::__private::redact_url;
/// assert_eq!(
///     redact_url("https://user:pw@intake.example/api/v2/logs?dd-api-key=abc&x"),
///     "https://[REDACTED]@intake.example/api/v2/logs?dd-api-key=[REDACTED]&[REDACTED]"
/// );
/// assert_eq!(redact_url("http://127.0.0.1:8080/relay"), "http://127.0.0.1:8080/relay");
/// ```
pub fn redact_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let (head, rest) = url.split_at(start);
    // The authority ends at the first '/', '?' or '#'; its userinfo ends at its last '@'.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut out = String::with_capacity(url.len());
    out.push_str(head);
    match authority.rfind('@') {
        Some(at) => {
            out.push_str(MASK);
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    // Path, then `?query` and `#fragment`, whose values are masked.
    let params_at = tail.find(['?', '#']).unwrap_or(tail.len());
    let (path, mut params) = tail.split_at(params_at);
    out.push_str(path);
    while let Some(sep) = params.chars().next() {
        out.push(sep);
        let body = &params[1..];
        // A fragment may follow a query; nothing follows a fragment.
        let end = if sep == '?' {
            body.find('#').unwrap_or(body.len())
        } else {
            body.len()
        };
        out.push_str(&mask_pairs(&body[..end]));
        params = &body[end..];
    }
    out
}

/// `a=1&b&c=` → `a=[REDACTED]&[REDACTED]&c=`: every non-empty value masked, names kept.
fn mask_pairs(pairs: &str) -> String {
    pairs
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if !value.is_empty() => format!("{name}={MASK}"),
            Some(_) => pair.to_string(),
            None if pair.is_empty() || pair == MASK => pair.to_string(),
            None => MASK.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn masks_userinfo_query_and_fragment_values() {
        let cases = [
            (
                "https://intake.example/api/v2/logs",
                "https://intake.example/api/v2/logs",
            ),
            (
                "https://u:secret@relay.example:8443/in",
                "https://[REDACTED]@relay.example:8443/in",
            ),
            (
                "https://token@relay.example",
                "https://[REDACTED]@relay.example",
            ),
            (
                "https://x.example/p?dd-api-key=SECRET&env=prod#t=SECRET2",
                "https://x.example/p?dd-api-key=[REDACTED]&env=[REDACTED]#t=[REDACTED]",
            ),
            ("https://x.example?SECRET", "https://x.example?[REDACTED]"),
            (
                "https://x.example/p?a=&b",
                "https://x.example/p?a=&[REDACTED]",
            ),
            ("not a url u:SECRET@host", "[REDACTED]@host"),
            (
                "relay.example/in?key=SECRET",
                "relay.example/in?key=[REDACTED]",
            ),
            ("", ""),
        ];
        for (input, want) in cases {
            let got = redact_url(input);
            assert_eq!(got, want, "{input}");
            assert_eq!(redact_url(&got), got, "idempotent: {input}");
        }
    }
}
