//! Tokens recognisable by a literal prefix: GitHub, Slack, Stripe, PostHog, OpenAI-style keys,
//! AWS access key ids, JWTs, Slack webhook URLs, `Bearer …` and `Basic …`.
//!
//! Every rule is "a literal prefix, then a run of some character class". One regex made of the
//! prefixes alone finds candidates (the regex engine runs it as a pure literal search, several
//! GB/s), and the rule's [`Body`] is then checked by hand on the bytes that follow. A full regex
//! per rule would be as correct but costs ≈ 200 ns more per match (the engine's second, reverse
//! scan), which on secret-heavy tails made redaction twice as slow as encoding.

use regex::Regex;

use super::candidate::Candidate;
use super::checks::{
    alnum, alnum_dash, alnum_underscore, any, base64, base64url, basic_credentials, bearer_token,
    has_digit, is_word, slack_token, stripe_key, token68, upper_digit, webhook_path,
    webhook_path_secret,
};

/// What follows a rule's prefix.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Body {
    /// `min..=max` bytes of `class` (greedy); with `word_end`, the next byte must not be a
    /// word character (so `AKIA` + 17 characters is not a key id).
    Run {
        class: fn(u8) -> bool,
        min: usize,
        max: usize,
        word_end: bool,
    },
    /// Spaces or tabs, at least `min` bytes of `class`, then at most `pad` `=`.
    Spaced {
        class: fn(u8) -> bool,
        min: usize,
        pad: usize,
    },
    /// The rest of a JWT after `eyJ`: ≥ 8 base64url, `.`, ≥ 8 base64url, `.`, base64url.
    Jwt,
}

/// Which part of a match is the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Secret {
    /// The whole match, prefix included.
    Whole,
    /// What follows the first `n` bytes (`hooks.slack.com/` stays).
    Skip(usize),
    /// What follows the spaces after the prefix (`Bearer ` stays).
    Body,
}

/// One token format.
#[derive(Debug)]
pub(crate) struct TokenRule {
    /// The `<kind>` in `[REDACTED:<kind>]`.
    pub kind: &'static str,
    /// Overlap priority (lower wins).
    pub rank: u8,
    /// Literal starts, case-sensitive; none may start with another rule's prefix.
    pub prefixes: &'static [&'static str],
    /// The byte before the prefix must not be a word character (`(?-u:\b)`).
    pub word_start: bool,
    /// What follows the prefix.
    pub body: Body,
    /// Which part of the match is the secret.
    pub secret: Secret,
    /// Whether the secret really is one.
    pub accept: fn(&str) -> bool,
}

const fn run(class: fn(u8) -> bool, min: usize, max: usize) -> Body {
    Body::Run {
        class,
        min,
        max,
        word_end: false,
    }
}

const fn rule(
    kind: &'static str,
    prefixes: &'static [&'static str],
    body: Body,
    accept: fn(&str) -> bool,
) -> TokenRule {
    TokenRule {
        kind,
        rank: 3,
        prefixes,
        word_start: true,
        body,
        secret: Secret::Whole,
        accept,
    }
}

/// The token rules.
pub(crate) const TOKEN_RULES: &[TokenRule] = &[
    rule(
        "github-token",
        &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        run(alnum, 20, 255),
        any,
    ),
    rule(
        "github-token",
        &["github_pat_"],
        run(alnum_underscore, 20, 255),
        any,
    ),
    rule(
        "slack-token",
        &["xox"],
        run(alnum_dash, 12, usize::MAX),
        slack_token,
    ),
    rule(
        "slack-token",
        &["xapp-"],
        run(alnum_dash, 10, usize::MAX),
        any,
    ),
    rule(
        "stripe-key",
        &["sk_", "rk_", "pk_"],
        run(alnum_underscore, 15, usize::MAX),
        stripe_key,
    ),
    rule("stripe-key", &["whsec_"], run(alnum, 20, usize::MAX), any),
    rule(
        "posthog-key",
        &["phc_", "phx_"],
        run(alnum, 20, usize::MAX),
        any,
    ),
    rule(
        "openai-key",
        &["sk-"],
        run(base64url, 20, usize::MAX),
        has_digit,
    ),
    rule(
        "aws-access-key-id",
        &["AKIA", "ASIA", "ABIA", "ACCA"],
        Body::Run {
            class: upper_digit,
            min: 16,
            max: 16,
            word_end: true,
        },
        any,
    ),
    rule("jwt", &["eyJ"], Body::Jwt, any),
    TokenRule {
        kind: "slack-webhook",
        rank: 3,
        prefixes: &["hooks.slack.com/"],
        word_start: false,
        body: run(webhook_path, 1, usize::MAX),
        secret: Secret::Skip("hooks.slack.com/".len()),
        accept: webhook_path_secret,
    },
    TokenRule {
        kind: "bearer",
        rank: 5,
        prefixes: &["Bearer", "bearer", "BEARER"],
        word_start: true,
        body: Body::Spaced {
            class: token68,
            min: 1,
            pad: usize::MAX,
        },
        secret: Secret::Body,
        accept: bearer_token,
    },
    TokenRule {
        kind: "basic-auth",
        rank: 5,
        prefixes: &["Basic", "basic", "BASIC"],
        word_start: true,
        body: Body::Spaced {
            class: base64,
            min: 4,
            pad: 2,
        },
        secret: Secret::Body,
        accept: basic_credentials,
    },
];

/// Finds candidates for every token rule with one literal search.
#[derive(Debug, Clone)]
pub(crate) struct TokenFinder {
    /// All prefixes as one alternation of literals.
    prefixes: Regex,
    /// Each prefix and the index of its rule, sorted by prefix.
    rules: Vec<(&'static str, usize)>,
}

impl TokenFinder {
    pub(crate) fn new() -> Self {
        let mut rules: Vec<(&'static str, usize)> = TOKEN_RULES
            .iter()
            .enumerate()
            .flat_map(|(i, r)| r.prefixes.iter().map(move |p| (*p, i)))
            .collect();
        rules.sort_unstable();
        let alternation: Vec<String> = rules.iter().map(|(p, _)| regex::escape(p)).collect();
        // Escaped literals always compile.
        let prefixes = Regex::new(&alternation.join("|")).expect("literal alternation compiles");
        TokenFinder { prefixes, rules }
    }

    /// Appends a candidate for every token in `text`.
    pub(crate) fn find(&self, text: &str, out: &mut Vec<Candidate>) {
        let b = text.as_bytes();
        let mut pos = 0;
        while let Some(m) = self.prefixes.find_at(text, pos) {
            // Prefixes are ASCII, so one byte on is a character boundary.
            pos = m.start() + 1;
            let Ok(i) = self.rules.binary_search_by(|(p, _)| (*p).cmp(m.as_str())) else {
                continue;
            };
            let rule = &TOKEN_RULES[self.rules[i].1];
            if rule.word_start && m.start() > 0 && is_word(b[m.start() - 1]) {
                continue;
            }
            let Some(end) = body_end(b, m.end(), rule.body) else {
                continue;
            };
            let start = match rule.secret {
                Secret::Whole => m.start(),
                Secret::Skip(n) => m.start() + n,
                Secret::Body => {
                    m.end() + b[m.end()..end].iter().take_while(|c| is_blank(**c)).count()
                }
            };
            if (rule.accept)(&text[start..end]) {
                out.push(Candidate {
                    start,
                    end,
                    kind: rule.kind,
                    rank: rule.rank,
                });
                pos = end;
            }
        }
    }
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The length of the run of `class` bytes at `at`, at most `max`.
fn run_len(b: &[u8], at: usize, class: fn(u8) -> bool, max: usize) -> usize {
    b[at.min(b.len())..]
        .iter()
        .take(max)
        .take_while(|c| class(**c))
        .count()
}

/// Where the token whose prefix ends at `at` ends, if the body matches.
fn body_end(b: &[u8], at: usize, body: Body) -> Option<usize> {
    match body {
        Body::Run {
            class,
            min,
            max,
            word_end,
        } => {
            let end = at + run_len(b, at, class, max);
            let bounded = !word_end || !b.get(end).copied().is_some_and(is_word);
            (end - at >= min && bounded).then_some(end)
        }
        Body::Spaced { class, min, pad } => {
            let blanks = run_len(b, at, is_blank, usize::MAX);
            let n = run_len(b, at + blanks, class, usize::MAX);
            let pad = run_len(b, at + blanks + n, |c| c == b'=', pad);
            (blanks > 0 && n >= min).then_some(at + blanks + n + pad)
        }
        Body::Jwt => {
            let mut end = at;
            for (i, min) in [8, 8, 0].into_iter().enumerate() {
                if i > 0 {
                    if b.get(end) != Some(&b'.') {
                        return None;
                    }
                    end += 1;
                }
                let n = run_len(b, end, base64url, usize::MAX);
                if n < min {
                    return None;
                }
                end += n;
            }
            Some(end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        TokenFinder::new().find(text, &mut out);
        out.iter()
            .map(|c| (c.kind, &text[c.start..c.end]))
            .collect()
    }

    #[test]
    fn prefixes_are_unambiguous() {
        let all: Vec<&str> = TOKEN_RULES
            .iter()
            .flat_map(|r| r.prefixes.iter().copied())
            .collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert!(!a.starts_with(b) && !b.starts_with(a), "{a} / {b}");
            }
        }
    }

    #[test]
    fn bodies_follow_the_documented_shapes() {
        let akid = "AKIAIOSFODNN7EXAMPLE";
        assert_eq!(found(akid), [("aws-access-key-id", akid)]);
        assert!(found("AKIAIOSFODNN7EXAMPLEX").is_empty(), "17 characters");
        assert!(found("xAKIAIOSFODNN7EXAMPLE").is_empty(), "no word start");
        assert_eq!(found("Bearer   abc123def=="), [("bearer", "abc123def==")]);
        assert!(found("Bearer").is_empty() && found("Bearer  ").is_empty());
        assert_eq!(
            found("Basic dXNlcjpwYXNz=="),
            [("basic-auth", "dXNlcjpwYXNz==")]
        );
        assert_eq!(
            found("x hooks.slack.com/services/T0/B0/abc y"),
            [("slack-webhook", "services/T0/B0/abc")]
        );
        let jwt = "eyJhbGciOiJI.eyJzdWIiOiIx.sig-_";
        assert_eq!(found(&format!("({jwt})")), [("jwt", jwt)]);
        assert!(found("eyJhbGciOiJI.eyJzdW.sig").is_empty(), "short payload");
        assert!(
            found("eyJhbGciOiJI.eyJzdWIiOiIx").is_empty(),
            "two segments"
        );
        let long = format!("ghp_{}", "a".repeat(300));
        assert_eq!(found(&long)[0].1.len(), 4 + 255);
        assert!(found("ghp_short").is_empty());
        assert!(found("sk-kebab-case-words-without-digits").is_empty());
        assert!(found("task-0123456789012345678901").is_empty());
    }
}
