//! The stacks binary (skeleton).
fn main() {}
