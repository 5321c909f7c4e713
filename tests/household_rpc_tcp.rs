//! The control API on loopback sockets: a speaker's listener and apps' connections.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lockstep::control::HouseholdKey;
use lockstep::household::rpc::codes;
use lockstep::household::rpc_tcp::MAX_CONNECTIONS;
use lockstep::household::{RpcCallError, RpcConnection, RpcError, RpcHandler, RpcListener};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(5);

fn key() -> HouseholdKey {
    HouseholdKey::new(b"the household key of the tcp test").expect("key")
}

/// A speaker with a volume.
struct Speaker {
    volume: f64,
}

impl RpcHandler for Speaker {
    fn call(&mut self, method: &str, params: &Value) -> Result<Value, RpcError> {
        match method {
            "speaker.volume" => {
                let v = params
                    .get("volume")
                    .and_then(Value::as_f64)
                    .filter(|v| (0.0..=1.0).contains(v))
                    .ok_or_else(|| RpcError::invalid_params("\"volume\" must be 0 to 1"))?;
                self.volume = v;
                Ok(json!({"volume": v}))
            }
            "speaker.status" => Ok(json!({"volume": self.volume})),
            _ => Err(RpcError::method_not_found(method)),
        }
    }
}

fn listener() -> (RpcListener, Arc<Mutex<Speaker>>) {
    let speaker = Arc::new(Mutex::new(Speaker { volume: 1.0 }));
    let handler: lockstep::household::SharedHandler = speaker.clone();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    (
        RpcListener::bind(addr, key(), handler).expect("bind"),
        speaker,
    )
}

#[test]
fn two_apps_log_in_call_and_both_hear_a_change() {
    let (l, speaker) = listener();
    let mut a = RpcConnection::connect(l.local_addr(), key(), WAIT).expect("a logs in");
    let mut b = RpcConnection::connect(l.local_addr(), key(), WAIT).expect("b logs in");
    let r = a
        .call("speaker.volume", json!({"volume": 0.25}), WAIT)
        .expect("set");
    assert_eq!(r, json!({"volume": 0.25}));
    assert_eq!(speaker.lock().unwrap().volume, 0.25);
    assert_eq!(
        b.call("speaker.status", json!({}), WAIT).expect("status"),
        json!({"volume": 0.25})
    );
    match a.call("speaker.volume", json!({"volume": 7}), WAIT) {
        Err(RpcCallError::Rpc(e)) => assert_eq!(e.code, codes::INVALID_PARAMS),
        other => panic!("expected invalid params, got {other:?}"),
    }
    // The connection is still usable after an error.
    assert!(a.call("speaker.status", json!({}), WAIT).is_ok());
    l.notify("speaker.changed", json!({"volume": 0.25}));
    for c in [&mut a, &mut b] {
        let n = c.next_notification(WAIT).expect("no failure");
        assert_eq!(
            n,
            Some(("speaker.changed".to_owned(), json!({"volume": 0.25})))
        );
    }
}

#[test]
fn a_wrong_key_is_closed_out_and_changes_nothing() {
    let (l, speaker) = listener();
    let wrong = HouseholdKey::new(b"someone else's key, long enough").unwrap();
    match RpcConnection::connect(l.local_addr(), wrong, WAIT) {
        Err(RpcCallError::Failed(why)) => assert!(why.contains("unauthenticated"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(speaker.lock().unwrap().volume, 1.0);
}

#[test]
fn connections_beyond_the_cap_are_closed_and_the_rest_still_serve() {
    let (l, _) = listener();
    let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(l.local_addr()).expect("connect"))
        .collect();
    let deadline = Instant::now() + WAIT;
    while l.connections() < MAX_CONNECTIONS {
        assert!(Instant::now() < deadline, "{} open", l.connections());
        std::thread::sleep(Duration::from_millis(10));
    }
    // One more is closed at once: it reads the end of the stream, not a challenge.
    let mut extra = TcpStream::connect(l.local_addr()).expect("connect");
    extra.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 256];
    assert_eq!(extra.read(&mut buf).expect("an orderly close"), 0);
    drop(idle);
    // The slots come back, and a genuine app gets in.
    let deadline = Instant::now() + WAIT;
    loop {
        match RpcConnection::connect(l.local_addr(), key(), WAIT) {
            Ok(mut c) => {
                assert!(c.call("speaker.status", json!({}), WAIT).is_ok());
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "never got in: {e}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
