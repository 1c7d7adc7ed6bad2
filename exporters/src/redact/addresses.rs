//! Secrets around an `@`: passwords in URLs (`scheme://user:PASSWORD@host`) and e-mail
//! addresses. Both scanners run only when the text contains `@`, and jump between occurrences
//! of `://` or `@` with `memchr`.

use memchr::memchr_iter;
use memchr::memmem::Finder;

use super::candidate::Candidate;
use super::checks::{email, is_word, not_placeholder};

/// The kind and rank of URL passwords.
pub(crate) const URL_PASSWORD: (&str, u8) = ("url-password", 2);
/// The kind and rank of e-mail addresses (the lowest priority).
pub(crate) const EMAIL: (&str, u8) = ("email", 7);

/// Ends a URL's user or password (`[\s/?#@"'<>\\]`; the user also ends at `:`).
fn url_stop(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b'/' | b'?' | b'#' | b'@' | b'"' | b'\'' | b'<' | b'>' | b'\\'
        )
}

/// Appends the password of every `://user:password@` in `text`; `scheme_end` finds `://`.
pub(crate) fn url_passwords(text: &str, scheme_end: &Finder<'_>, out: &mut Vec<Candidate>) {
    let b = text.as_bytes();
    for scheme_end in scheme_end.find_iter(b) {
        let mut i = scheme_end + 3;
        while i < b.len() && !url_stop(b[i]) && b[i] != b':' {
            i += 1;
        }
        if b.get(i) != Some(&b':') {
            continue;
        }
        let start = i + 1;
        let end = start + b[start..].iter().take_while(|c| !url_stop(**c)).count();
        if end > start && b.get(end) == Some(&b'@') && not_placeholder(&text[start..end]) {
            out.push(Candidate {
                start,
                end,
                kind: URL_PASSWORD.0,
                rank: URL_PASSWORD.1,
            });
        }
    }
}

/// Local-part characters: `[A-Za-z0-9._%+-]`.
fn local(b: u8) -> bool {
    is_word(b) || matches!(b, b'.' | b'%' | b'+' | b'-')
}

/// Appends every e-mail address in `text`: a local part starting with a word character at a
/// word boundary, `@`, then at least two dot-separated labels of `[A-Za-z0-9-]`, the last one
/// alphabetic (≥ 2 letters) and not followed by a word character.
pub(crate) fn emails(text: &str, out: &mut Vec<Candidate>) {
    let b = text.as_bytes();
    for at in memchr_iter(b'@', b) {
        let mut start = at;
        while start > 0 && local(b[start - 1]) {
            start -= 1;
        }
        while start < at && !is_word(b[start]) {
            start += 1;
        }
        if start == at {
            continue;
        }
        let Some(end) = domain_end(b, at + 1) else {
            continue;
        };
        if email(&text[start..end]) {
            out.push(Candidate {
                start,
                end,
                kind: EMAIL.0,
                rank: EMAIL.1,
            });
        }
    }
}

/// The end of the longest valid domain starting at `from`: labels of `[A-Za-z0-9-]+` joined by
/// dots, ending in a top-level domain of ≥ 2 letters that a non-word character (or the end)
/// follows. As with the regex `[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b`, the letters
/// may be the start of a longer label (`example.com-x` ends after `com`).
fn domain_end(b: &[u8], from: usize) -> Option<usize> {
    let label = |c: u8| c.is_ascii_alphanumeric() || c == b'-';
    let (mut best, mut start, mut first) = (None, from, true);
    loop {
        let end = start + b[start..].iter().take_while(|c| label(**c)).count();
        if end == start {
            return best;
        }
        if !first {
            let letters = b[start..end]
                .iter()
                .take_while(|c| c.is_ascii_alphabetic())
                .count();
            if letters >= 2 && !b.get(start + letters).copied().is_some_and(is_word) {
                best = Some(start + letters);
            }
        }
        if b.get(end) != Some(&b'.') {
            return best;
        }
        first = false;
        start = end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_passwords(text: &str, out: &mut Vec<Candidate>) {
        super::url_passwords(text, &Finder::new("://"), out);
    }

    fn found(text: &str, f: fn(&str, &mut Vec<Candidate>)) -> Vec<&str> {
        let mut out = Vec::new();
        f(text, &mut out);
        out.iter().map(|c| &text[c.start..c.end]).collect()
    }

    #[test]
    fn url_passwords_keep_user_and_host() {
        assert_eq!(found("https://u:p4ss@h.io/x", url_passwords), ["p4ss"]);
        assert_eq!(found("redis://:tok@cache:6379", url_passwords), ["tok"]);
        assert_eq!(
            found("mongodb+srv://u:pä ss@h", url_passwords),
            Vec::<&str>::new()
        );
        assert_eq!(
            found("https://h.io:8080/a@b", url_passwords),
            Vec::<&str>::new()
        );
        assert_eq!(found("ssh://git@h:22/r", url_passwords), Vec::<&str>::new());
        assert_eq!(found("https://u:***@h", url_passwords), Vec::<&str>::new());
        assert_eq!(found("s://u:pässwörd@h", url_passwords), ["pässwörd"]);
    }

    #[test]
    fn emails_have_a_boundary_a_dot_and_an_alphabetic_tld() {
        assert_eq!(
            found("to jane.doe+x@mail.example.co.uk.", emails),
            ["jane.doe+x@mail.example.co.uk"]
        );
        assert_eq!(
            found("foo_bar@example.com", emails),
            ["foo_bar@example.com"]
        );
        assert_eq!(found("(.bob@example.org)", emails), ["bob@example.org"]);
        assert_eq!(found("a@b.com.123", emails), ["a@b.com"]);
        assert_eq!(found("j@example.com-----BEGIN", emails), ["j@example.com"]);
        assert_eq!(
            found("j@example.com-x.org", emails),
            ["j@example.com-x.org"]
        );
        assert!(found("inflight@1.0.6 pkg@latest user@localhost", emails).is_empty());
        assert!(found("git@github.com:org/repo.git", emails).is_empty());
        assert!(found("x@y.c0m a@b.com_x @example.com", emails).is_empty());
        assert_eq!(found("a@b@c.io", emails), ["b@c.io"]);
    }
}
