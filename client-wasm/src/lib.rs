//! Ferry client for WebAssembly.
