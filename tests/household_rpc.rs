//! The control API's transport, sans-IO: an app's `RpcClient` and a speaker's `RpcServer`
//! moving bytes by hand, and raw lines from a client that is not ours.

use lockstep::control::HouseholdKey;
use lockstep::household::rpc::{MAX_REQUEST_LEN, codes};
use lockstep::household::{ClientEvent, RpcClient, RpcError, RpcHandler, RpcServer};
use serde_json::{Value, json};

fn key() -> HouseholdKey {
    HouseholdKey::new(b"the household key of the rpc test").expect("key")
}

fn other_key() -> HouseholdKey {
    HouseholdKey::new(b"a neighbour's household key, not ours").expect("key")
}

/// A speaker with one method, `echo`, and one that fails, `speaker.volume` on a speaker
/// it does not know. It records what reached it.
#[derive(Default)]
struct Speaker {
    calls: Vec<String>,
}

impl RpcHandler for Speaker {
    fn call(&mut self, method: &str, params: &Value) -> Result<Value, RpcError> {
        self.calls.push(method.to_owned());
        match method {
            "echo" => Ok(params.clone()),
            "speaker.volume" => match params.get("speaker").and_then(Value::as_str) {
                Some("kitchen") => Ok(json!({"volume": params["volume"]})),
                Some(other) => Err(RpcError::not_found(other)),
                None => Err(RpcError::invalid_params("\"speaker\" is missing")),
            },
            _ => Err(RpcError::method_not_found(method)),
        }
    }
}

/// Moves bytes both ways until neither side has any; returns the client's events.
fn shuttle(c: &mut RpcClient, s: &mut RpcServer, speaker: &mut Speaker) -> Vec<ClientEvent> {
    let mut events = Vec::new();
    for _ in 0..20 {
        let mut moved = false;
        while let Some(b) = s.poll_transmit() {
            c.handle_input(&b);
            moved = true;
        }
        while let Some(b) = c.poll_transmit() {
            s.handle_input(&b, speaker);
            moved = true;
        }
        while let Some(e) = c.poll_event() {
            events.push(e);
        }
        if !moved {
            return events;
        }
    }
    panic!("the two never went quiet");
}

/// Sends raw `line` to `s` (not yet authenticated unless the caller did) and returns the
/// one JSON value it answers with.
fn raw(s: &mut RpcServer, speaker: &mut Speaker, line: &[u8]) -> Value {
    s.handle_input(line, speaker);
    let out = s.poll_transmit().expect("an answer");
    let text = String::from_utf8(out).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one answer: {text}");
    serde_json::from_str(lines[0]).expect("JSON")
}

fn error_code(v: &Value) -> i64 {
    v["error"]["code"].as_i64().expect("an error")
}

/// A server whose challenge has been read away.
fn server(key: HouseholdKey) -> RpcServer {
    let mut s = RpcServer::new(key, [7; 16]);
    let challenge = s.poll_transmit().expect("a challenge");
    let v: Value = serde_json::from_slice(&challenge).expect("JSON");
    assert_eq!(v["method"], "auth.challenge");
    assert_eq!(v["params"]["nonce"], "07".repeat(16));
    s
}

#[test]
fn a_client_with_the_key_logs_in_calls_and_hears_notifications() {
    let mut speaker = Speaker::default();
    let mut s = RpcServer::new(key(), [7; 16]);
    let mut c = RpcClient::new(key(), [9; 16]);
    // A call queued before the login goes after it.
    let early = c.call("echo", json!({"a": 1}));
    let events = shuttle(&mut c, &mut s, &mut speaker);
    assert!(s.is_authenticated() && c.is_authenticated());
    assert_eq!(
        events,
        [
            ClientEvent::Authenticated,
            ClientEvent::Response {
                id: early,
                result: Ok(json!({"a": 1}))
            }
        ]
    );
    let ok = c.call(
        "speaker.volume",
        json!({"speaker": "kitchen", "volume": 0.5}),
    );
    let missing = c.call("speaker.volume", json!({"speaker": "attic", "volume": 0.5}));
    let unknown = c.call("group.explode", json!({}));
    s.notify("speaker.changed", json!({"speaker": "kitchen"}));
    let events = shuttle(&mut c, &mut s, &mut speaker);
    assert_eq!(
        events,
        [
            ClientEvent::Notification {
                method: "speaker.changed".into(),
                params: json!({"speaker": "kitchen"})
            },
            ClientEvent::Response {
                id: ok,
                result: Ok(json!({"volume": 0.5}))
            },
            ClientEvent::Response {
                id: missing,
                result: Err(RpcError::not_found("attic"))
            },
            ClientEvent::Response {
                id: unknown,
                result: Err(RpcError::method_not_found("group.explode"))
            },
        ]
    );
    assert_eq!(
        speaker.calls,
        ["echo", "speaker.volume", "speaker.volume", "group.explode"]
    );
}

#[test]
fn a_wrong_key_is_refused_with_nothing_learned_and_no_method_runs() {
    let mut speaker = Speaker::default();
    let mut s = RpcServer::new(key(), [7; 16]);
    let mut c = RpcClient::new(other_key(), [9; 16]);
    c.call("echo", json!({"secret": "?"}));
    let events = shuttle(&mut c, &mut s, &mut speaker);
    assert!(!s.is_authenticated() && !c.is_authenticated());
    assert!(s.is_closed(), "the speaker closes after a failed login");
    assert!(
        matches!(events.as_slice(), [ClientEvent::Failed(why)] if why.contains("unauthenticated")),
        "{events:?}"
    );
    assert!(
        speaker.calls.is_empty(),
        "a method ran: {:?}",
        speaker.calls
    );
    // Notifications never reach it.
    s.notify("speaker.changed", json!({"speaker": "kitchen"}));
    assert!(s.poll_transmit().is_none());

    // What the wrong key got back, byte for byte: the bare error, no data.
    let mut s = server(key());
    let login = json!({
        "jsonrpc": "2.0", "method": "auth.login", "id": 1,
        "params": {"nonce": "09".repeat(16), "proof": "00".repeat(32)},
    });
    let answer = raw(&mut s, &mut speaker, format!("{login}\n").as_bytes());
    assert_eq!(
        answer,
        json!({"jsonrpc": "2.0", "id": 1,
               "error": {"code": codes::UNAUTHENTICATED, "message": "unauthenticated"}})
    );
    assert!(s.is_closed());
}

#[test]
fn a_speaker_without_the_key_is_found_out_by_the_client() {
    // A fake speaker: it accepts any login and answers with a made-up proof.
    let mut c = RpcClient::new(key(), [9; 16]);
    c.handle_input(
        format!(
            "{}\n",
            json!({"jsonrpc": "2.0", "method": "auth.challenge",
                   "params": {"nonce": "07".repeat(16), "protocol": 1}})
        )
        .as_bytes(),
    );
    let login: Value = serde_json::from_slice(&c.poll_transmit().expect("a login")).unwrap();
    assert_eq!(login["method"], "auth.login");
    let id = login["id"].clone();
    c.handle_input(
        format!(
            "{}\n",
            json!({"jsonrpc": "2.0", "id": id, "result": {"proof": "11".repeat(32)}})
        )
        .as_bytes(),
    );
    assert!(!c.is_authenticated() && c.is_closed());
    assert!(
        matches!(c.poll_event(), Some(ClientEvent::Failed(why)) if why.contains("did not prove"))
    );
}

#[test]
fn before_the_login_every_method_is_unauthenticated() {
    let mut speaker = Speaker::default();
    let mut s = server(key());
    for method in ["household.status", "echo", "speaker.volume"] {
        let line = format!("{}\n", json!({"jsonrpc": "2.0", "method": method, "id": 3}));
        let answer = raw(&mut s, &mut speaker, line.as_bytes());
        assert_eq!(error_code(&answer), codes::UNAUTHENTICATED, "{method}");
        assert_eq!(answer["id"], 3);
    }
    assert!(speaker.calls.is_empty());
    assert!(!s.is_closed(), "asking is not a failed login");
    assert_eq!(s.stats().unauthenticated, 3);
}

/// A server a raw client has logged into with the right key.
fn logged_in(speaker: &mut Speaker) -> RpcServer {
    let mut s = RpcServer::new(key(), [7; 16]);
    let mut c = RpcClient::new(key(), [9; 16]);
    let events = shuttle(&mut c, &mut s, speaker);
    assert_eq!(events, [ClientEvent::Authenticated]);
    s
}

#[test]
fn bad_requests_get_their_standard_errors_and_the_connection_stays_usable() {
    let mut speaker = Speaker::default();
    let mut s = logged_in(&mut speaker);
    let cases: [(&[u8], i64); 9] = [
        (b"{not json\n", codes::PARSE_ERROR),
        (b"[]\n", codes::INVALID_REQUEST),
        (b"42\n", codes::INVALID_REQUEST),
        (
            br#"{"jsonrpc":"1.0","method":"echo","id":1}"#,
            codes::INVALID_REQUEST,
        ),
        (
            br#"{"jsonrpc":"2.0","method":7,"id":1}"#,
            codes::INVALID_REQUEST,
        ),
        (
            br#"{"jsonrpc":"2.0","method":"echo","params":3,"id":1}"#,
            codes::INVALID_REQUEST,
        ),
        (
            br#"{"jsonrpc":"2.0","method":"echo","id":{"no":1}}"#,
            codes::INVALID_REQUEST,
        ),
        (
            br#"{"jsonrpc":"2.0","method":"nope","id":1}"#,
            codes::METHOD_NOT_FOUND,
        ),
        (
            br#"{"jsonrpc":"2.0","method":"speaker.volume","params":{},"id":1}"#,
            codes::INVALID_PARAMS,
        ),
    ];
    for (line, code) in cases {
        let mut line = line.to_vec();
        if line.last() != Some(&b'\n') {
            line.push(b'\n');
        }
        let answer = raw(&mut s, &mut speaker, &line);
        assert_eq!(
            error_code(&answer),
            code,
            "{}",
            String::from_utf8_lossy(&line)
        );
        assert_eq!(answer["jsonrpc"], "2.0");
    }
    // Still usable, in pieces of one byte.
    let line = br#"{"jsonrpc":"2.0","method":"echo","params":[1,2],"id":"x"}"#;
    for b in line {
        s.handle_input(std::slice::from_ref(b), &mut speaker);
    }
    let answer = raw(&mut s, &mut speaker, b"\r\n");
    assert_eq!(
        answer,
        json!({"jsonrpc": "2.0", "result": [1, 2], "id": "x"})
    );
    // A notification gets no answer, even when it fails.
    s.handle_input(b"{\"jsonrpc\":\"2.0\",\"method\":\"nope\"}\n", &mut speaker);
    assert!(s.poll_transmit().is_none());
    // A batch gets an array of answers, notifications left out.
    let answer = raw(
        &mut s,
        &mut speaker,
        br#"[{"jsonrpc":"2.0","method":"echo","params":{"n":1},"id":1},{"jsonrpc":"2.0","method":"echo"},{"x":1}]
"#,
    );
    let answers = answer.as_array().expect("an array");
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["result"], json!({"n": 1}));
    assert_eq!(error_code(&answers[1]), codes::INVALID_REQUEST);
    assert!(!s.is_closed());
}

#[test]
fn a_request_over_64_kib_is_refused_before_it_is_held_whole() {
    let mut speaker = Speaker::default();
    let mut s = logged_in(&mut speaker);
    // 1 MiB in 4 KiB pieces, no newline: one refusal, and never more than the cap held.
    let piece = vec![b' '; 4096];
    let mut answers = Vec::new();
    for _ in 0..256 {
        s.handle_input(&piece, &mut speaker);
        assert!(s.buffered() <= MAX_REQUEST_LEN);
        if let Some(out) = s.poll_transmit() {
            answers.push(out);
        }
    }
    assert_eq!(answers.len(), 1, "one refusal");
    let refusal: Value = serde_json::from_slice(&answers[0]).unwrap();
    assert_eq!(error_code(&refusal), codes::INVALID_REQUEST);
    assert_eq!(s.buffered(), 0, "the rest of the line is skipped, not held");
    // The end of that line, then a good request: answered.
    let answer = raw(
        &mut s,
        &mut speaker,
        b"tail of the long line\n{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[true],\"id\":5}\n",
    );
    assert_eq!(answer["result"], json!([true]));
    assert_eq!(s.stats().oversized, 1);
}
