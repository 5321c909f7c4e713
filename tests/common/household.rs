//! An app's side of the control API in the household tests: calls that panic with what
//! failed, the status and its entries, and waiting on them. Included with
//! `#[path = "common/household.rs"] mod household;` next to `common/node.rs` (as `node`).

#![allow(dead_code)] // (Not every test that includes this file uses all of it.)

use std::time::Duration;

use lockstep::household::RpcConnection;
use serde_json::{Value, json};

use super::node::wait_until;

/// How long a call may take.
pub const CALL: Duration = Duration::from_secs(5);

/// Calls `method`, panicking with the method, its params and the error if it fails.
pub fn call(app: &mut RpcConnection, method: &str, params: Value) -> Value {
    app.call(method, params.clone(), CALL)
        .unwrap_or_else(|e| panic!("{method} {params}: {e}"))
}

/// `household.status`.
pub fn status(app: &mut RpcConnection) -> Value {
    call(app, "household.status", json!({}))
}

/// The status entry of the speaker named `name`.
pub fn entry<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["speakers"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("{name} in {status}"))
}

/// Waits until every speaker named in `names` is online in `app`'s status and `f` holds
/// for its entry; returns the status that showed it.
pub fn wait_for(
    app: &mut RpcConnection,
    names: &[&str],
    limit: Duration,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    let ok = wait_until(limit, || {
        last = status(app);
        names.iter().all(|n| {
            last["speakers"]
                .as_array()
                .and_then(|a| a.iter().find(|s| s["name"] == *n))
                .is_some_and(|s| s["online"] == true && f(s))
        })
    });
    assert!(ok.is_some(), "waited {limit:?} for {names:?}: {last:#}");
    last
}

/// Whether a speaker's status entry says it plays.
pub fn playing(s: &Value) -> bool {
    s["health"]["playing"] == true
}
