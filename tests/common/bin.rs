//! The example binaries, as a user runs them. Included by the CLI tests with
//! `#[path = "common/bin.rs"] mod bin;` (not through `common`, whose counting allocator
//! they do not need).

use std::path::PathBuf;
use std::process::Command;

/// A command for the example `name`, which `cargo test` built next to the test binaries.
pub fn example(name: &str) -> Command {
    let exe = std::env::current_exe().expect("test path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin: PathBuf = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} not built", bin.display());
    Command::new(bin)
}
