//! Session capabilities, segment tags and content keys derived from `[keys] master`
//! (docs/hls.md §3–5). Placeholder; being written.

/// A byte range of an origin resource served as a resource of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange {
    /// First byte.
    pub offset: u64,
    /// Length in bytes; `None` = to the end of the resource.
    pub length: Option<u64>,
}

/// How one URI is served, as its segment tag (`tgs`) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Serve {
    /// Encrypt with the content key of (`inc`, `period`), IV = `msn`.
    Encrypt {
        /// Stream incarnation.
        inc: u64,
        /// Key period.
        period: u64,
        /// Media sequence number (the IV).
        msn: u64,
        /// Serve only this range of the origin resource.
        range: Option<ByteRange>,
    },
    /// Serve as the origin has it.
    Clear {
        /// Serve only this range of the origin resource.
        range: Option<ByteRange>,
    },
}

/// Temporary until the capability core lands: accepts what docs/hls.md §3 allows.
pub fn parse_master(text: &str) -> Result<Vec<u8>, String> {
    Ok(text.as_bytes().to_vec())
}
