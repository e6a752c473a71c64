//! Observe benchmark (placeholder until the client exists).
fn main() {}
