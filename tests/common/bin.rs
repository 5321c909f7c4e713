//! The example binaries, as a user runs them. Included by the CLI tests with
//! `#[path = "common/bin.rs"] mod bin;` (not through `common`, whose counting allocator
//! they do not need).

use std::path::{Path, PathBuf};
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

/// Builds the examples `names` into the target directory and profile this test binary runs
/// from (`<target>/<profile dir>/deps/<test>-…`): `cargo test` does not build examples for
/// an integration test by itself. A no-op when they are fresh.
#[allow(dead_code)] // (Not every test that includes this file builds examples.)
pub fn build(names: &[&str]) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("unexpected test binary path")?;
    let target_dir = profile_dir.parent().ok_or("unexpected test binary path")?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(p) => p,
        None => return Err("unexpected test binary path".into()),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut cmd = std::process::Command::new(cargo);
    cmd.arg("build")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .args(["--profile", profile]);
    for name in names {
        cmd.args(["--example", name]);
    }
    let out = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
