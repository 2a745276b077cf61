//! Example worker.

fn main() {}
