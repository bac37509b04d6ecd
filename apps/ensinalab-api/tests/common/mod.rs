//! What the test binaries share, each including this module with `#[path]` and using a subset
//! of it: the booted app and its HTTP side, the servers a test starts itself, the live streams'
//! readers, and the seed's response bodies.

pub mod app;
pub mod contract;
pub mod http;
pub mod process;
pub mod servers;
pub mod sse;
pub mod ws;
