//! Secrets named by their key: `password=…`, `"token": "…"`, `Authorization: …`, `DD_API_KEY=…`.
//!
//! Instead of searching for every spelling of every key name (case-insensitive keyword sets
//! defeat the regex engine's literal prefilter and cost several µs per 4 KiB), the scanner jumps
//! from separator to separator (`:` and `=`, with `memchr2`) and looks back at the key just
//! before it. Keys are compared after ASCII lower-casing and dropping `_` and `-`, so
//! `api_key`, `API-KEY`, `apiKey` and `x-api-key` are all "ends with `apikey`".

use super::candidate::Candidate;
use super::checks::{kv_value, not_placeholder, pwd_value};

/// How far a value extends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A header value: quoted, or everything up to the end of the line.
    Header,
    /// A plain value: quoted, or a run up to whitespace, a quote, `,`, `;`, `&`, `)`, `}`, `]`.
    Plain,
}

/// Secrets found by key name.
pub(crate) struct KeyRule {
    /// The `<kind>` in `[REDACTED:<kind>]`.
    pub kind: &'static str,
    /// Overlap priority (lower wins).
    pub rank: u8,
    /// Normalized key endings (ASCII lower case, no `_` / `-`).
    pub keys: &'static [&'static str],
    /// The whole key must be one of `keys`, not just end with it.
    pub whole: bool,
    /// How far the value extends.
    pub shape: Shape,
    /// Whether the value really is a secret.
    pub accept: fn(&str) -> bool,
}

/// The key rules, in the order they are tried for one key.
pub(crate) const KEY_RULES: &[KeyRule] = &[
    KeyRule {
        kind: "authorization",
        rank: 1,
        keys: &["authorization"],
        whole: false,
        shape: Shape::Header,
        accept: not_placeholder,
    },
    KeyRule {
        kind: "cookie",
        rank: 1,
        keys: &["cookie"],
        whole: false,
        shape: Shape::Header,
        accept: not_placeholder,
    },
    KeyRule {
        kind: "aws-secret-key",
        rank: 4,
        keys: &["awssecretaccesskey", "awssecretkey", "secretaccesskey"],
        whole: false,
        shape: Shape::Plain,
        accept: kv_value,
    },
    KeyRule {
        kind: "datadog-key",
        rank: 4,
        keys: &[
            "ddapikey",
            "ddappkey",
            "ddapplicationkey",
            "datadogapikey",
            "datadogappkey",
            "datadogapplicationkey",
        ],
        whole: false,
        shape: Shape::Plain,
        accept: kv_value,
    },
    KeyRule {
        kind: "secret",
        rank: 6,
        keys: &[
            "password",
            "passwd",
            "passphrase",
            "secret",
            "secretkey",
            "token",
            "apikey",
            "accesskey",
            "privatekey",
            "credential",
            "credentials",
        ],
        whole: false,
        shape: Shape::Plain,
        accept: kv_value,
    },
    KeyRule {
        kind: "secret",
        rank: 6,
        keys: &["pwd"],
        whole: true,
        shape: Shape::Plain,
        accept: pwd_value,
    },
];

/// The longest key looked at, in bytes (longer keys are judged by their last 64 bytes).
const MAX_KEY: usize = 64;

/// The last two bytes of every key ending (`[a][b]` bit set): a key ending in any other pair
/// is rejected at once, before it is normalized. Every key ending is at least 3 bytes long.
const LAST_TWO: [u64; 1024] = {
    let mut table = [0u64; 1024];
    let mut i = 0;
    while i < KEY_RULES.len() {
        let mut j = 0;
        while j < KEY_RULES[i].keys.len() {
            let k = KEY_RULES[i].keys[j].as_bytes();
            let pair = (k[k.len() - 2] as usize) << 8 | k[k.len() - 1] as usize;
            table[pair / 64] |= 1 << (pair % 64);
            j += 1;
        }
        i += 1;
    }
    table
};

/// Whether a key whose last two normalized bytes are `a`, `b` may end in a keyword.
fn may_end_in_keyword(a: u8, b: u8) -> bool {
    let pair = usize::from(a) << 8 | usize::from(b);
    LAST_TWO[pair / 64] & (1 << (pair % 64)) != 0
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Appends a candidate for every keyed secret in `text`.
pub(crate) fn find(text: &str, out: &mut Vec<Candidate>) {
    let b = text.as_bytes();
    let mut pos = 0;
    while let Some(off) = memchr::memchr2(b':', b'=', &b[pos..]) {
        let sep = pos + off;
        pos = sep + 1;
        let Some(rule) = rule_for_key(b, sep) else {
            continue;
        };
        pos = pos.max(push_value(text, sep, rule, out));
    }
}

/// For a tail that may begin inside a key (`ssword=hunter2`, `thorization: Bearer …`): when the
/// first line's first key starts at the very beginning of `text` and is the end of a known key
/// name, appends its value as a candidate of that rule.
pub(crate) fn find_cut_key(text: &str, out: &mut Vec<Candidate>) {
    let b = text.as_bytes();
    let key_len = b.iter().take_while(|c| is_key_byte(**c)).count();
    let Some(sep) = (key_len..b.len().min(key_len + 4)).find(|&i| matches!(b[i], b':' | b'='))
    else {
        return;
    };
    if key_len == 0
        || key_len > MAX_KEY
        || !b[key_len..sep]
            .iter()
            .all(|c| matches!(c, b' ' | b'\t' | b'"' | b'\'' | b'\\'))
    {
        return;
    }
    let mut norm = [0u8; MAX_KEY];
    let mut n = 0;
    for &c in &b[..key_len] {
        if c != b'_' && c != b'-' {
            norm[n] = c.to_ascii_lowercase();
            n += 1;
        }
    }
    let key = &norm[..n];
    let rule = KEY_RULES
        .iter()
        .find(|rule| !key.is_empty() && rule.keys.iter().any(|w| w.as_bytes().ends_with(key)));
    if let Some(rule) = rule {
        push_value(text, sep, rule, out);
    }
}

/// Appends the value after the separator at `sep` if `rule` accepts it; returns where the value
/// ends.
fn push_value(text: &str, sep: usize, rule: &'static KeyRule, out: &mut Vec<Candidate>) -> usize {
    let (start, end, resume) = value(text.as_bytes(), sep, rule.shape);
    let raw = &text[start..end];
    let secret = raw.trim();
    if !secret.is_empty() && (rule.accept)(secret) {
        let start = start + (raw.len() - raw.trim_start().len());
        out.push(Candidate {
            start,
            end: start + secret.len(),
            kind: rule.kind,
            rank: rule.rank,
        });
    }
    resume
}

/// The rule whose key name ends just before the separator at `sep`, if any.
fn rule_for_key(b: &[u8], sep: usize) -> Option<&'static KeyRule> {
    let mut k = sep;
    while k > 0 && matches!(b[k - 1], b' ' | b'\t') {
        k -= 1;
    }
    if k > 0 && matches!(b[k - 1], b'"' | b'\'') {
        k -= 1;
        if k > 0 && b[k - 1] == b'\\' {
            k -= 1;
        }
    }
    let key_end = k;
    let mut last = [0u8; 2];
    let mut seen = 0;
    let mut j = key_end;
    while j > 0 && seen < 2 && is_key_byte(b[j - 1]) {
        j -= 1;
        if b[j] != b'_' && b[j] != b'-' {
            last[1 - seen] = b[j].to_ascii_lowercase();
            seen += 1;
        }
    }
    if seen < 2 || !may_end_in_keyword(last[0], last[1]) {
        return None;
    }
    while k > 0 && key_end - k < MAX_KEY && is_key_byte(b[k - 1]) {
        k -= 1;
    }
    let starts_key = k == 0 || !is_key_byte(b[k - 1]);
    match_rule(&b[k..key_end], starts_key)
}

/// The rule for a JSON object key or field name (`db_password`, `Authorization`, `x.api_key`):
/// its last run of key characters is judged as a key before a separator would be.
pub(crate) fn rule_for_name(name: &str) -> Option<&'static KeyRule> {
    let b = name.as_bytes();
    let mut k = b.len();
    while k > 0 && b.len() - k < MAX_KEY && is_key_byte(b[k - 1]) {
        k -= 1;
    }
    let starts_key = k == 0 || !is_key_byte(b[k - 1]);
    match_rule(&b[k..], starts_key)
}

/// The rule matching a raw key of at most [`MAX_KEY`] bytes (`starts_key`: nothing key-like
/// precedes it, as the `whole` rules require).
fn match_rule(raw: &[u8], starts_key: bool) -> Option<&'static KeyRule> {
    let mut norm = [0u8; MAX_KEY];
    let mut n = 0;
    for &c in raw {
        if c != b'_' && c != b'-' {
            norm[n] = c.to_ascii_lowercase();
            n += 1;
        }
    }
    let key = &norm[..n];
    KEY_RULES.iter().find(|rule| {
        rule.keys.iter().any(|w| {
            if rule.whole {
                starts_key && key == w.as_bytes()
            } else {
                key.ends_with(w.as_bytes())
            }
        })
    })
}

/// The value after the separator at `sep`: `(start, end, where scanning resumes)`.
fn value(b: &[u8], sep: usize, shape: Shape) -> (usize, usize, usize) {
    let mut i = sep + 1;
    if b[sep] == b'=' && b.get(i) == Some(&b'>') {
        i += 1;
    }
    while i < b.len() && matches!(b[i], b' ' | b'\t') {
        i += 1;
    }
    let eol = |from: usize| memchr::memchr2(b'\n', b'\r', &b[from..]).map_or(b.len(), |o| from + o);
    match b.get(i) {
        Some(&q @ (b'"' | b'\'')) => {
            let start = i + 1;
            let line_end = eol(start);
            let end = memchr::memchr(q, &b[start..line_end]).map_or(line_end, |o| start + o);
            (start, end, end)
        }
        Some(b'\\') if b.get(i + 1) == Some(&b'"') => {
            let start = i + 2;
            let line_end = eol(start);
            let end =
                memchr::memmem::find(&b[start..line_end], b"\\\"").map_or(line_end, |o| start + o);
            (start, end, end)
        }
        // A nested object or array is not a value: its own keys are scanned on their own.
        Some(b'{' | b'[') => (i, i, i),
        _ => {
            let len = match shape {
                Shape::Header => b[i..].iter().position(|&c| header_stop(c)),
                Shape::Plain => b[i..].iter().position(|&c| plain_stop(c)),
            };
            let end = len.map_or(b.len(), |o| i + o);
            (i, end, end)
        }
    }
}

/// Ends an unquoted header value: a quote, a backslash or the end of the line.
fn header_stop(c: u8) -> bool {
    matches!(c, b'"' | b'\'' | b'\\' | b'\r' | b'\n')
}

/// Ends an unquoted plain value.
fn plain_stop(c: u8) -> bool {
    c.is_ascii_whitespace()
        || matches!(
            c,
            b'"' | b'\'' | b'\\' | b',' | b';' | b'&' | b')' | b'}' | b']'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        find(text, &mut out);
        out.iter()
            .map(|c| (c.kind, &text[c.start..c.end]))
            .collect()
    }

    #[test]
    fn keys_match_in_any_case_and_spelling() {
        assert_eq!(kinds("DB_PASSWORD=x1"), [("secret", "x1")]);
        assert_eq!(kinds("{\"apiKey\": \"k1\"}"), [("secret", "k1")]);
        assert_eq!(kinds("X-Api-Key: k2"), [("secret", "k2")]);
        assert_eq!(
            kinds("aws_secret_access_key = abc"),
            [("aws-secret-key", "abc")]
        );
        assert_eq!(kinds("DD-API-KEY: 0a1b"), [("datadog-key", "0a1b")]);
        assert_eq!(kinds(":password => 'pw'"), [("secret", "pw")]);
        assert_eq!(kinds(r#"{\"token\":\"t1\"}"#), [("secret", "t1")]);
        assert_eq!(kinds("?access_token=a&b=c"), [("secret", "a")]);
        assert_eq!(
            kinds("Set-Cookie: a=b; Path=/"),
            [("cookie", "a=b; Path=/")]
        );
    }

    #[test]
    fn a_cut_key_at_the_start_still_names_its_value() {
        fn cut(t: &str) -> Vec<(&'static str, &str)> {
            let mut out = Vec::new();
            find_cut_key(t, &mut out);
            out.iter().map(|c| (c.kind, &t[c.start..c.end])).collect()
        }
        assert_eq!(cut("ssword=letmein rest"), [("secret", "letmein")]);
        assert_eq!(cut("ken\": \"abc\""), [("secret", "abc")]);
        assert_eq!(
            cut("thorization: Bearer abc"),
            [("authorization", "Bearer abc")]
        );
        assert!(
            cut("level=info token=x").is_empty(),
            "only the first key, and only a cut one"
        );
        assert!(cut("PATH=/usr/bin").is_empty());
        assert!(cut(" ssword=x").is_empty(), "the key must start the text");
    }

    #[test]
    fn names_are_judged_like_keys() {
        let kind = |n: &str| rule_for_name(n).map(|r| r.kind);
        assert_eq!(kind("db_password"), Some("secret"));
        assert_eq!(kind("Proxy-Authorization"), Some("authorization"));
        assert_eq!(kind("DD_API_KEY"), Some("datadog-key"));
        assert_eq!(kind("pwd"), Some("secret"));
        assert_eq!(kind("oldpwd"), None);
        assert_eq!(kind("max_tokens"), None);
        assert_eq!(kind("token_type"), None);
        assert_eq!(kind(""), None);
        assert_eq!(kind(&"x".repeat(200)), None);
    }

    #[test]
    fn other_keys_and_separators_are_ignored() {
        assert!(kinds("09:14:03 max_tokens=5 tokenizer=x token_type: bearer").is_empty());
        assert!(kinds("OLDPWD=x PWD=/home").is_empty());
        assert!(kinds("Authorization header missing: retry").is_empty());
        assert!(kinds("token:").is_empty());
        assert!(kinds("=:=:").is_empty());
    }

    #[test]
    fn every_key_ending_passes_the_quick_filter() {
        for rule in KEY_RULES {
            for key in rule.keys {
                let k = key.as_bytes();
                assert!(k.len() >= 3 && may_end_in_keyword(k[k.len() - 2], k[k.len() - 1]));
                assert!(!key.contains(['_', '-']) && key.to_ascii_lowercase() == *key);
            }
        }
    }
}
