//! Secret redaction for every free-text string before it leaves the process: verbose tails
//! (`logTail`, `stderrTail`, [`Redactor::redact_tail`]) and, on every stream whatever the
//! verbose setting, `exitSignal`, `abortReason`, `errorStack` and every string in `spawnMeta`,
//! `tokenUsage` and `extra` ([`Redactor::free_text`]; see `docs/PRIVACY.md`).
//!
//! Every secret below is replaced by a marker `[REDACTED:<kind>]`; the text around it (header
//! names, key names, user and host names, the rest of the line) stays.
//!
//! | kind | what is matched | what is replaced |
//! |---|---|---|
//! | `private-key` | PEM `-----BEGIN … PRIVATE KEY-----` (RSA, EC, DSA, OPENSSH, ENCRYPTED, PGP `… BLOCK`) through its `-----END …-----` line, across lines (also JSON-escaped `\n`); to the end of the text when the END line is missing | the whole block |
//! | `authorization` | the value after a key ending in `authorization` (`Authorization:`, `Proxy-Authorization:`, `HTTP_AUTHORIZATION=`, JSON / Python-dict keys) | the whole value (`Bearer …`, `Basic …`, `token …`, `Digest …`) up to its closing quote or the end of the line |
//! | `cookie` | the value after a key ending in `cookie` (`Cookie:`, `Set-Cookie:`) | the whole value, attributes included |
//! | `url-password` | `scheme://user:PASSWORD@host` | the password only; scheme, user and host stay |
//! | `slack-webhook` | `hooks.slack.com/services/…`, `/workflows/…`, `/triggers/…` | the path after the host |
//! | `github-token` | `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` + 20–255 alphanumerics; `github_pat_` + 20–255 `[A-Za-z0-9_]` | the token |
//! | `slack-token` | `xoxa-`, `xoxb-`, `xoxe-`, `xoxo-`, `xoxp-`, `xoxr-`, `xoxs-` + ≥ 10 `[A-Za-z0-9-]`; `xapp-…` | the token |
//! | `stripe-key` | `sk_`, `rk_`, `pk_` + `live_` / `test_` + ≥ 10 alphanumerics; `whsec_` + ≥ 20 | the key |
//! | `posthog-key` | PostHog `phc_` (project) and `phx_` (personal) + ≥ 20 alphanumerics | the key |
//! | `openai-key` | `sk-` + ≥ 20 `[A-Za-z0-9_-]` with a digit (`sk-proj-…`, `sk-svcacct-…`, `sk-ant-…` too) | the key |
//! | `aws-access-key-id` | `AKIA`, `ASIA`, `ABIA`, `ACCA` + exactly 16 `[A-Z0-9]` | the key id |
//! | `jwt` | `eyJ` + ≥ 8, `.`, ≥ 8, `.`, any base64url characters | the token |
//! | `aws-secret-key` | the value after `aws_secret_access_key`, `aws_secret_key`, `secret_access_key`, `SecretAccessKey` (normally 40 base64 characters) | the value |
//! | `datadog-key` | the value after `DD_API_KEY`, `DD_APP_KEY`, `DD-API-KEY`, `dd_application_key`, `datadog_api_key`, … (normally 32 or 40 hex digits) | the value |
//! | `bearer` | `Bearer <token>` outside a header (`Bearer`, `bearer`, `BEARER`; a token68 of ≥ 8 characters with a digit, or ≥ 20) | the token |
//! | `basic-auth` | `Basic <base64>` outside a header, when the base64 decodes to `user:password` | the credentials |
//! | `secret` | the value after a key ending in `password`, `passwd`, `passphrase`, `secret`, `secret_key`, `token`, `api_key`, `access_key`, `private_key`, `credential(s)` — so `DB_PASSWORD`, `access_token`, `client_secret`, `x-api-key`, `apiKey` — or the key `pwd` | the value |
//! | `email` | e-mail addresses (`local@domain.tld`, ASCII) | the address |
//! | `fragment` | only in [`Redactor::redact_tail`]: a first word that looks like the end of a cut token (see there) | that word |
//!
//! Keys are matched case-insensitively and regardless of `_` / `-` (`api_key`, `API-KEY` and
//! `apiKey` are the same key), with `=`, `:` or `=>` after them and bare, `"…"`, `'…'` or
//! JSON-escaped `\"…\"` values: env dumps, YAML, JSON, logfmt, query strings, Python and Ruby
//! literals. A bare value ends at whitespace, a quote, `,`, `;`, `&`, `)`, `}` or `]`.
//!
//! What is deliberately **not** redacted, to keep tails useful: hex commit hashes, UUIDs,
//! digests, version numbers, paths, `PWD=/home/me` (a `pwd` value that is a path), counts such as
//! `max_tokens=256` (the key must *end* in a keyword), `token_type`, `git@github.com` (an SSH
//! user, not a person), values already masked (`***`, `[REDACTED…]`, `<redacted>`),
//! `null` / `true` / `false` / `yes` / `no` / `none`, and nested objects (`"credentials": {`).
//! Prose can be over-redacted where it looks like a key/value pair (`token: expired`).
//!
//! **How it stays cheap** (it runs when each event is encoded for a stream): one pass
//! jumps between `:` / `=` separators (`memchr2`) and looks back at the key; one literal search
//! finds every token prefix and checks the rest of the format by hand; the `@` scanners (URL
//! passwords, e-mail) and the PEM pattern run only when the text contains `@` or `PRIVATE KEY`.
//! No capture groups, no case-insensitive regex, no allocation when nothing matched (the text
//! comes back borrowed). On a 4 KiB tail this costs 0.45× of encoding the relay item with no
//! secret in it and 0.9× with nine (1.44 µs and 2.93 µs against 3.2–3.3 µs, `benches/export.rs`).
//! Free text ([`Redactor::free_text`]) costs 0.11× of a typical event's PostHog encoding and
//! 0.41× for a failing command's event with a 1.5 KiB error stack, abort reason and spawn meta
//! holding two secrets (0.17 µs / 1.54 µs and 2.5 µs / 6.2 µs, `benches/encode.rs`, a short
//! run on a shared machine); the encoding figures include the redaction.
//!
//! ```
//! use closedloop_telemetry_exporters::__private::redact::Redactor;
//! let r = Redactor::new();
//! assert_eq!(
//!     r.redact("curl -H 'Authorization: Bearer abc123def456' https://api.example.com"),
//!     "curl -H 'Authorization: [REDACTED:authorization]' https://api.example.com"
//! );
//! assert_eq!(
//!     r.redact("fetching postgres://app:hunter2@db.internal:5432/main"),
//!     "fetching postgres://app:[REDACTED:url-password]@db.internal:5432/main"
//! );
//! assert!(matches!(r.redact("commit 3f2a9c1e0b7d4a6f"), std::borrow::Cow::Borrowed(_)));
//! ```

mod addresses;
mod candidate;
mod checks;
mod free_text;
mod keyed;
mod tokens;

pub(crate) use free_text::FreeText;

use std::borrow::Cow;
use std::sync::OnceLock;

use closedloop_telemetry_layers::__private::truncate::{keep_tail, TAIL_MAX_BYTES};
use memchr::memmem;
use regex::Regex;

use candidate::Candidate;

/// A PEM private key block, through its END line or the end of the text.
const PRIVATE_KEY: &str = r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|\z)";
/// A PEM END line, for tails that begin inside a private key.
const PEM_END: &str = r"-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----";
/// What every PEM private key BEGIN / END line contains: the PEM patterns only run on texts
/// containing it.
const PEM_NEEDLE: &[u8] = b"PRIVATE KEY";
/// The kind and rank of private keys (the highest priority).
const PRIVATE_KEY_KIND: (&str, u8) = ("private-key", 0);
/// The kind of the leading fragment of a tail.
const FRAGMENT: &str = "fragment";

/// Replaces secrets in text by `[REDACTED:<kind>]` markers; see the module docs (`redact/mod.rs`) for
/// the patterns.
///
/// Building one compiles a few regular expressions (well under a millisecond): build it once
/// and share it, or use [`Redactor::shared`]. Redacting is `&self` and thread-safe.
///
/// When two secrets overlap, the one with the higher priority names the marker and the marker
/// covers both (so nothing either pattern considers secret survives). Priority, highest first:
/// private keys; `Authorization` / `Cookie` values; URL passwords; token formats; AWS secret
/// and Datadog keys; `Bearer` / `Basic`; other key/value secrets; e-mail addresses. An e-mail
/// address overlapping another secret is left to it (so `user:pass@host.com` keeps its host).
#[derive(Clone)]
pub struct Redactor {
    tokens: tokens::TokenFinder,
    private_key: Regex,
    pem_end: Regex,
    pem_needle: memmem::Finder<'static>,
    scheme_end: memmem::Finder<'static>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("token_rules", &tokens::TOKEN_RULES.len())
            .field("key_rules", &keyed::KEY_RULES.len())
            .finish_non_exhaustive()
    }
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new()
    }
}

impl Redactor {
    /// Compiles the patterns.
    pub fn new() -> Self {
        Redactor {
            tokens: tokens::TokenFinder::new(),
            // Constant patterns, compiled by the unit tests: these cannot fail at run time.
            private_key: Regex::new(PRIVATE_KEY).expect("PEM pattern compiles"),
            pem_end: Regex::new(PEM_END).expect("PEM END pattern compiles"),
            pem_needle: memmem::Finder::new(PEM_NEEDLE),
            scheme_end: memmem::Finder::new("://"),
        }
    }

    /// A process-wide instance, compiled on first use.
    pub fn shared() -> &'static Redactor {
        static SHARED: OnceLock<Redactor> = OnceLock::new();
        SHARED.get_or_init(Redactor::new)
    }

    /// Replaces every secret in `text`; borrows `text` unchanged when there is none.
    ///
    /// The output is valid UTF-8 with the same text around each marker. It may be longer than
    /// the input (a marker can be longer than a short password); use [`Redactor::redact_tail`]
    /// for tails, which keeps the 4096-byte bound.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let has_pem = self.pem_needle.find(text.as_bytes()).is_some();
        self.redact_with(text, has_pem, false)
    }

    /// [`Redactor::redact`], told whether `text` may contain a PEM block.
    fn redact_with<'t>(&self, text: &'t str, has_pem: bool, cut_start: bool) -> Cow<'t, str> {
        let spans = self.find(text, has_pem, cut_start);
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len() + 16 * spans.len());
        let mut at = 0;
        for s in &spans {
            out.push_str(&text[at..s.start]);
            push_marker(&mut out, s.kind);
            at = s.end;
        }
        out.push_str(&text[at..]);
        Cow::Owned(out)
    }

    /// Redacts a tail and cuts the result back to its last [`TAIL_MAX_BYTES`] bytes.
    ///
    /// A tail is the end of a longer output, so it may begin in the middle of a secret whose
    /// recognisable start (`ghp_`, `password=`, `-----BEGIN`) was cut off. Three rules cover
    /// the start of a tail:
    /// - if the tail contains a PEM `-----END … PRIVATE KEY-----` line before any `-----BEGIN`,
    ///   everything from the start of the tail through that line is `[REDACTED:private-key]`;
    /// - otherwise, if the tail's first word (the bytes before the first character outside
    ///   `A–Z a–z 0–9 + / = _ . ~ -`) looks like the end of a random token — at least 8 bytes
    ///   mixing letters and digits, or at least 12 bytes with a lower-to-upper-case "hump" — it
    ///   becomes `[REDACTED:fragment]` (capitalised or all-lower-case words such as
    ///   `Downloading` are kept);
    /// - otherwise, if the tail begins with a key and separator (`ssword=…`, `ken": "…"`,
    ///   `thorization: …`) and that key is the end of a known key name, its value is redacted
    ///   as for the full key.
    ///
    /// What can still pass is a short piece of a secret: a fragment of at most 7 characters, or
    /// of at most 11 letters without digits or humps. Such pieces are not usable credentials.
    ///
    /// Redaction happens before the cut, so a secret can never be exposed by it; the cut may
    /// split a marker at the very start of the result, which is harmless.
    pub fn redact_tail(&self, tail: &str) -> String {
        self.redact_tail_cow(tail).into_owned()
    }

    /// [`Redactor::redact_tail`] without copying a tail that needs no change.
    pub(crate) fn redact_tail_cow<'t>(&self, tail: &'t str) -> Cow<'t, str> {
        let has_pem = self.pem_needle.find(tail.as_bytes()).is_some();
        let (skip, kind) = self.leading_fragment(tail, has_pem);
        let rest = self.redact_with(&tail[skip..], has_pem, skip == 0);
        let out = if skip == 0 {
            rest
        } else {
            let mut out = String::with_capacity(rest.len() + 24);
            push_marker(&mut out, kind);
            out.push_str(&rest);
            Cow::Owned(out)
        };
        match out {
            Cow::Borrowed(s) => Cow::Borrowed(keep_tail(s, TAIL_MAX_BYTES)),
            Cow::Owned(s) if s.len() <= TAIL_MAX_BYTES => Cow::Owned(s),
            Cow::Owned(s) => Cow::Owned(keep_tail(&s, TAIL_MAX_BYTES).to_string()),
        }
    }

    /// How many bytes at the start of a tail are the remains of a cut secret, and their kind.
    fn leading_fragment(&self, tail: &str, has_pem: bool) -> (usize, &'static str) {
        if has_pem {
            if let Some(end) = self.pem_end.find(tail) {
                if !tail[..end.start()].contains("-----BEGIN") {
                    return (end.end(), PRIVATE_KEY_KIND.0);
                }
            }
        }
        let word = tail
            .bytes()
            .position(|b| !(b.is_ascii_alphanumeric() || b"+/=_.~-".contains(&b)))
            .unwrap_or(tail.len());
        let w = &tail.as_bytes()[..word];
        let letters_and_digits =
            w.iter().any(u8::is_ascii_digit) && w.iter().any(u8::is_ascii_alphabetic);
        let camel_hump = w
            .windows(2)
            .any(|p| p[0].is_ascii_lowercase() && p[1].is_ascii_uppercase());
        let cut_token = (word >= 8 && letters_and_digits) || (word >= 12 && camel_hump);
        (if cut_token { word } else { 0 }, FRAGMENT)
    }

    /// All secrets in `text`, sorted and disjoint. Allocates only when something matched.
    fn find(&self, text: &str, has_pem: bool, cut_start: bool) -> Vec<Candidate> {
        let bytes = text.as_bytes();
        let mut found = Vec::new();
        if has_pem {
            found.extend(self.private_key.find_iter(text).map(|m| Candidate {
                start: m.start(),
                end: m.end(),
                kind: PRIVATE_KEY_KIND.0,
                rank: PRIVATE_KEY_KIND.1,
            }));
        }
        if cut_start {
            keyed::find_cut_key(text, &mut found);
        }
        keyed::find(text, &mut found);
        self.tokens.find(text, &mut found);
        if memchr::memchr(b'@', bytes).is_some() {
            addresses::url_passwords(text, &self.scheme_end, &mut found);
            addresses::emails(text, &mut found);
        }
        merge(found)
    }
}

/// Resolves overlaps: candidates are taken by priority; one that overlaps those already taken
/// widens them (keeping the higher-priority kind), except an e-mail address, which is dropped.
fn merge(mut found: Vec<Candidate>) -> Vec<Candidate> {
    if found.len() <= 1 {
        return found;
    }
    found.sort_unstable_by_key(|c| (c.rank, c.start));
    let mut taken: Vec<Candidate> = Vec::with_capacity(found.len());
    for c in found {
        let lo = taken.partition_point(|t| t.end <= c.start);
        let hi = lo + taken[lo..].iter().take_while(|t| t.start < c.end).count();
        if lo == hi {
            taken.insert(lo, c);
        } else if c.kind != addresses::EMAIL.0 {
            let best = taken[lo..hi]
                .iter()
                .min_by_key(|t| t.rank)
                .copied()
                .unwrap_or(c);
            let widened = Candidate {
                start: taken[lo].start.min(c.start),
                end: taken[hi - 1].end.max(c.end),
                ..best
            };
            taken.splice(lo..hi, [widened]);
        }
    }
    taken
}

fn push_marker(out: &mut String, kind: &str) {
    out.push_str("[REDACTED:");
    out.push_str(kind);
    out.push(']');
}

#[cfg(test)]
mod tests;
