//! Session capabilities, segment tags and content keys derived from `[keys] master`
//! (docs/hls.md §3–5). Placeholder; being written.
