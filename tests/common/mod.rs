//! Helpers shared by the integration tests. Each test file that says `mod common;` compiles
//! its own copy of this module.

pub mod alloc;
