//! Encrypted-segment cache with single-flight fills (docs/hls.md §7). Placeholder; being written.
