//! HLS playlist rewriting (docs/hls.md §6). Placeholder; being written.
