//! The `consul-ipvs` binary (placeholder).
fn main() {}
