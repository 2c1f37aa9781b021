//! Placeholder: filled in by the scheme work.
fn main() {}
