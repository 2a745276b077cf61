//! Parses configuration and runs the bridge.

fn main() {}
