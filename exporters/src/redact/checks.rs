//! Byte classes and the small checks that reject look-alikes of secrets.

/// ASCII word characters, as in `(?-u:\w)`.
pub(crate) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `[A-Za-z0-9]`.
pub(crate) fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// `[A-Za-z0-9_]`.
pub(crate) fn alnum_underscore(b: u8) -> bool {
    is_word(b)
}

/// `[A-Za-z0-9-]`.
pub(crate) fn alnum_dash(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// base64url: `[A-Za-z0-9_-]`.
pub(crate) fn base64url(b: u8) -> bool {
    is_word(b) || b == b'-'
}

/// `[A-Z0-9]`.
pub(crate) fn upper_digit(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

/// RFC 6750 token68 characters: `[A-Za-z0-9._~+/-]`.
pub(crate) fn token68(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'+' | b'/' | b'-')
}

/// base64: `[A-Za-z0-9+/]`.
pub(crate) fn base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// Slack webhook path characters: `[A-Za-z0-9_/+-]`.
pub(crate) fn webhook_path(b: u8) -> bool {
    is_word(b) || matches!(b, b'/' | b'+' | b'-')
}

/// Accepts everything.
pub(crate) fn any(_: &str) -> bool {
    true
}

/// At least one ASCII digit (real `sk-…` keys have some; kebab-case words do not).
pub(crate) fn has_digit(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit())
}

/// Rejects values that are already masked: `***`, `xxxx`, `[REDACTED…]`, `<redacted>`.
pub(crate) fn not_placeholder(s: &str) -> bool {
    let masked = !s.is_empty() && s.bytes().all(|b| matches!(b, b'*' | b'x' | b'X' | b'.'));
    !(masked || s.starts_with("[REDACTED") || s.starts_with("<redacted") || s.starts_with("%2A%2A"))
}

/// A Slack token after the `xox` prefix: `xox[abeoprs]-…`.
pub(crate) fn slack_token(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > 5 && b"abeoprs".contains(&b[3]) && b[4] == b'-'
}

/// A Stripe key: `sk_` / `rk_` / `pk_`, `live_` or `test_`, then ≥ 10 alphanumerics.
pub(crate) fn stripe_key(s: &str) -> bool {
    let mode = s.get(3..8);
    let key = s.get(8..).unwrap_or("");
    matches!(mode, Some("live_" | "test_"))
        && key.len() >= 10
        && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A Slack webhook path: `services/…`, `workflows/…` or `triggers/…`.
pub(crate) fn webhook_path_secret(s: &str) -> bool {
    ["services/", "workflows/", "triggers/"]
        .iter()
        .any(|p| s.len() > p.len() && s.starts_with(p))
}

/// A bearer token: ≥ 8 characters with a digit, or ≥ 20 (so `the bearer instrument` stays).
pub(crate) fn bearer_token(s: &str) -> bool {
    s.len() >= 8 && (has_digit(s) || s.len() >= 20) && not_placeholder(s)
}

/// Base64 that decodes to `user:password` (so `Basic usage` and `basic information` stay).
pub(crate) fn basic_credentials(s: &str) -> bool {
    let mut bits = 0u32;
    let mut nbits = 0;
    for b in s.bytes().take_while(|b| *b != b'=') {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            let byte = (bits >> nbits) as u8;
            bits &= (1 << nbits) - 1;
            if byte == b':' {
                return true;
            }
            if byte < 0x20 || byte == 0x7f {
                return false;
            }
        }
    }
    false
}

/// A key/value secret: not empty, not masked, not `null`/`true`/`none`/`yes`/….
pub(crate) fn kv_value(s: &str) -> bool {
    const NOT_SECRETS: &[&str] = &[
        "null",
        "nil",
        "none",
        "true",
        "false",
        "undefined",
        "required",
        "optional",
        "yes",
        "no",
        "on",
        "off",
    ];
    !s.is_empty() && not_placeholder(s) && !NOT_SECRETS.iter().any(|n| s.eq_ignore_ascii_case(n))
}

/// `pwd=` is a password in connection strings but the working directory in shell environments
/// (`PWD=/home/me`): paths are not redacted.
pub(crate) fn pwd_value(s: &str) -> bool {
    let b = s.as_bytes();
    let windows_path = b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':';
    kv_value(s) && !s.starts_with(['/', '~', '.']) && !windows_path
}

/// Rejects the `git@host` user of SSH remotes, which is not a person's address.
pub(crate) fn email(s: &str) -> bool {
    !s.starts_with("git@")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_requires_a_colon_in_the_decoded_value() {
        assert!(basic_credentials("dXNlcjpwYXNz")); // user:pass
        assert!(basic_credentials("YWxhZGRpbjpvcGVuc2VzYW1l")); // aladdin:opensesame
        assert!(!basic_credentials("usage"));
        assert!(!basic_credentials("information"));
        assert!(!basic_credentials("aGVsbG8gd29ybGQ=")); // hello world
    }

    #[test]
    fn placeholders_and_paths_are_not_secrets() {
        assert!(!kv_value(""));
        assert!(!kv_value("***"));
        assert!(!kv_value("NULL"));
        assert!(!kv_value("[REDACTED:secret]"));
        assert!(kv_value("hunter2"));
        assert!(!pwd_value("/srv/me"));
        assert!(!pwd_value("C:\\Users\\me"));
        assert!(pwd_value("S3cr3t!"));
        assert!(!bearer_token("instrument"));
        assert!(bearer_token("abc123def456"));
        assert!(!email("git@github.com"));
    }

    #[test]
    fn prefix_family_checks() {
        assert!(slack_token("xoxb-1234567890"));
        assert!(!slack_token("xoxz-1234567890"));
        assert!(stripe_key("sk_live_0123456789"));
        assert!(stripe_key("pk_test_abcdefghij"));
        assert!(!stripe_key("sk_prod_0123456789"));
        assert!(!stripe_key("sk_live_012345678"));
        assert!(!stripe_key("sk_live_0123456789_x"));
        assert!(webhook_path_secret("services/T0/B0/x"));
        assert!(!webhook_path_secret("services/"));
        assert!(!webhook_path_secret("api/x"));
    }
}
