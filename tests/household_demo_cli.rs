//! The `household_demo` example as a user runs it (as root): it completes, prints every
//! line of its report, and leaves no network namespace behind. Ignored by default (root
//! and iproute2); run by `.ci/run` with `--ignored`.
//!
//! The figures against the targets are the demo's to print (a missed target is printed as
//! `MISSED`, and is not a failure of the run); this test holds that the run works end to
//! end and reports each step.

#[path = "common/bin.rs"]
mod bin;

/// The names `ip netns list` prints.
fn namespaces() -> Vec<String> {
    lockstep::net::NetNs::list().expect("run ip netns list")
}

#[test]
#[ignore = "needs root and iproute2: run by .ci/run with --ignored"]
fn the_household_demo_runs_and_reports_every_step() {
    bin::build(&["household_demo"]).expect("build the demo");
    let started = std::time::Instant::now();
    let out = bin::example("household_demo")
        .output()
        .expect("run the demo");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "the demo failed ({}): {stderr}",
        out.status
    );
    let report = stdout
        .split("=== household demo report ===")
        .nth(1)
        .unwrap_or_else(|| panic!("no report in: {stdout}"));
    for line in [
        "listed Living L: ",
        "listed Living R: ",
        "listed Sub: ",
        "listed Kitchen: ",
        "listed Den: ",
        "play Downstairs: sounding ",
        "skew Downstairs, from play to the move: p50 ",
        "play Upstairs: Den sounding ",
        "move Kitchen to Upstairs: sounding ",
        "skew Upstairs, Den and Kitchen after the move: p50 ",
        "skew Downstairs, from the move to the restart: p50 ",
        "underruns of the speakers that stayed: Living L ",
        "restart Living R: sounding ",
        "skew Downstairs, Living L and Living R after the restart: p50 ",
        "settings of Living R after its restart: volume ",
        "listed Living R again: ",
        "summary: ",
    ] {
        assert!(
            report.lines().any(|l| l.starts_with(line)),
            "no line {line:?} in the report:\n{report}"
        );
    }
    // Every target line says whether it was met.
    for l in report.lines().filter(|l| l.contains("(target ")) {
        assert!(l.ends_with(" ok") || l.ends_with(" MISSED"), "{l}");
    }
    assert!(took.as_secs() < 90, "the demo took {took:?}");
    // Its namespaces (lockstep-demo-PID-N) are gone.
    let prefix = format!("lockstep-demo-{}-", out_pid(&stdout));
    let left: Vec<String> = namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The demo's process id, from the hub's namespace name it prints
/// (`network: hub lockstep-demo-PID-0 …`).
fn out_pid(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("network: hub lockstep-demo-"))
        .and_then(|rest| rest.split('-').next())
        .unwrap_or_else(|| panic!("no hub namespace named in: {stdout}"))
        .to_owned()
}
