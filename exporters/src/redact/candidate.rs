//! [`Candidate`]: what every finder of the redactor reports.

/// A secret found in a text: its byte range, kind and overlap priority (lower wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub start: usize,
    pub end: usize,
    pub kind: &'static str,
    pub rank: u8,
}
