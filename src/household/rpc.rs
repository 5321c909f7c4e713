//! The household control API's transport: JSON-RPC 2.0, one JSON value per line over a byte
//! stream (TCP), authenticated by the household key before anything else. Sans-IO.
//!
//! A speaker runs one [`RpcServer`] per accepted connection and an app one [`RpcClient`]
//! per speaker it talks to. Both only move bytes: feed what arrived to `handle_input`, send
//! what `poll_transmit` returns, close once `is_closed` says so. What a method does is the
//! caller's [`RpcHandler`]; this module frames, checks and answers.
//!
//! # Authentication
//!
//! 1. On connecting, the server sends the notification
//!    `{"jsonrpc":"2.0","method":"auth.challenge","params":{"nonce":N,"protocol":1}}`,
//!    `N` 16 fresh bytes in lower-case hex.
//! 2. The client calls `auth.login` with `{"nonce":C,"proof":P}`: `C` its own fresh 16
//!    bytes, `P` HMAC-SHA256 under the household key over `"lockstep/1 rpc client" || N ||
//!    C` (64 hex digits).
//! 3. The server checks the proof (in constant time). If it holds, the result is
//!    `{"proof":Q}`, with `Q` the HMAC over `"lockstep/1 rpc server" || N || C`, which the
//!    client checks in turn: a server that does not hold the key is found out before the
//!    client sends it anything else. If it does not hold, the answer is the
//!    [`codes::UNAUTHENTICATED`] error, with no data, and the server closes: a wrong key
//!    learns nothing about the household.
//!
//! Before step 3 every other request gets [`codes::UNAUTHENTICATED`], and nothing is
//! announced. The labels differ from the control channel's proofs, so no proof made for one
//! is ever accepted by the other.
//!
//! # Framing and errors
//!
//! A request is one line (`\n`-terminated; a `\r` before it is ignored). A line over
//! [`MAX_REQUEST_LEN`] is refused with [`codes::INVALID_REQUEST`] as soon as that many bytes
//! have come without a newline, and the rest of it is skipped unread; the connection stays
//! usable. Malformed JSON is [`codes::PARSE_ERROR`], a value that is not a request is
//! [`codes::INVALID_REQUEST`] (with the id `null` when none can be read), and batches (an
//! array of requests) are answered with an array, as JSON-RPC 2.0 says. Notifications
//! (requests without an id) get no answer, even when they fail.

use std::collections::VecDeque;

use serde_json::{Map, Value, json};

use crate::control::{HouseholdKey, Nonce};

/// The longest request line accepted, in bytes (64 KiB).
pub const MAX_REQUEST_LEN: usize = 64 * 1024;

/// The protocol number the challenge carries.
pub const RPC_PROTOCOL: u32 = 1;

/// The label of a client's login proof.
const CLIENT_LABEL: &[u8] = b"lockstep/1 rpc client";
/// The label of a server's proof in its answer.
const SERVER_LABEL: &[u8] = b"lockstep/1 rpc server";

/// The error codes the API answers with: JSON-RPC 2.0's own, and lockstep's.
pub mod codes {
    /// The line is not valid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON is not a valid request (or the line is over the size cap).
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The method's parameters are wrong.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The speaker failed inside.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The connection has not proved the household key (or proved a wrong one).
    pub const UNAUTHENTICATED: i64 = -32001;
    /// A stereo pair of two different models.
    pub const MODEL_MISMATCH: i64 = -32002;
    /// No speaker or group of that name or id.
    pub const NOT_FOUND: i64 = -32003;
    /// Two versions of the household, or two leaders of one group, disagree.
    pub const CONFLICT: i64 = -32004;
}

/// A JSON-RPC error: a code from [`codes`], a message, and data when there is more to say.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The code.
    pub code: i64,
    /// A short description.
    pub message: String,
    /// What else the caller should know (e.g. the speaker named), if anything.
    pub data: Option<Value>,
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)?;
        if let Some(data) = &self.data {
            write!(f, ": {data}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RpcError {}

impl RpcError {
    /// An error with `code` and `message` and no data.
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// The same, with `data`.
    pub fn with_data(mut self, data: Value) -> RpcError {
        self.data = Some(data);
        self
    }

    /// [`codes::METHOD_NOT_FOUND`] naming `method`.
    pub fn method_not_found(method: &str) -> RpcError {
        RpcError::new(codes::METHOD_NOT_FOUND, "method not found").with_data(json!(method))
    }

    /// [`codes::INVALID_PARAMS`] saying what is wrong.
    pub fn invalid_params(detail: impl Into<String>) -> RpcError {
        RpcError::new(codes::INVALID_PARAMS, "invalid params").with_data(json!(detail.into()))
    }

    /// [`codes::NOT_FOUND`] naming what was looked for.
    pub fn not_found(what: impl Into<String>) -> RpcError {
        RpcError::new(codes::NOT_FOUND, "no such speaker or group").with_data(json!(what.into()))
    }

    /// [`codes::UNAUTHENTICATED`], with nothing more.
    pub fn unauthenticated() -> RpcError {
        RpcError::new(codes::UNAUTHENTICATED, "unauthenticated")
    }

    fn to_json(&self) -> Value {
        let mut e = Map::new();
        e.insert("code".into(), json!(self.code));
        e.insert("message".into(), json!(self.message));
        if let Some(d) = &self.data {
            e.insert("data".into(), d.clone());
        }
        Value::Object(e)
    }

    fn from_json(v: &Value) -> Option<RpcError> {
        Some(RpcError {
            code: v.get("code")?.as_i64()?,
            message: v.get("message")?.as_str()?.to_owned(),
            data: v.get("data").cloned(),
        })
    }
}

/// What a speaker does with the API's methods.
pub trait RpcHandler {
    /// Runs `method` with `params` (`Value::Null` when the request had none) for an
    /// authenticated client. [`RpcError::method_not_found`] for a method it does not know.
    fn call(&mut self, method: &str, params: &Value) -> Result<Value, RpcError>;
}

/// Counters of what a connection refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RpcStats {
    /// Requests answered (results and errors).
    pub answered: u64,
    /// Lines that were not JSON.
    pub parse_errors: u64,
    /// Values that were not requests.
    pub invalid: u64,
    /// Lines over [`MAX_REQUEST_LEN`].
    pub oversized: u64,
    /// Requests refused for want of authentication, and failed logins.
    pub unauthenticated: u64,
}

/// Splits lines off a byte stream, refusing any over [`MAX_REQUEST_LEN`] before it is all
/// buffered.
#[derive(Debug, Default)]
struct Lines {
    buf: Vec<u8>,
    /// Inside a line that was too long: drop bytes up to its newline.
    skipping: bool,
}

/// One item [`Lines::push`] found.
enum Line {
    Text(Vec<u8>),
    TooLong,
}

impl Lines {
    /// Takes `bytes` and hands each whole line, or the news of one too long, to `f`.
    fn push(&mut self, mut bytes: &[u8], f: &mut dyn FnMut(Line)) {
        while !bytes.is_empty() {
            let newline = bytes.iter().position(|&b| b == b'\n');
            let (piece, rest, ends) = match newline {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            bytes = rest;
            if self.skipping {
                self.skipping = !ends;
                continue;
            }
            if self.buf.len() + piece.len() > MAX_REQUEST_LEN {
                self.buf = Vec::new();
                self.skipping = !ends;
                f(Line::TooLong);
                continue;
            }
            self.buf.extend_from_slice(piece);
            if ends {
                let mut line = std::mem::take(&mut self.buf);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                f(Line::Text(line));
            }
        }
    }

    /// [`push`](Self::push), collecting what it finds.
    fn split(&mut self, bytes: &[u8]) -> Vec<Line> {
        let mut lines = Vec::new();
        self.push(bytes, &mut |l| lines.push(l));
        lines
    }

    fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Appends `v` and a newline to `out`.
fn write_line(out: &mut Vec<u8>, v: &Value) {
    // Serialising a Value to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
    out.push(b'\n');
}

fn response(id: Value, result: Result<Value, RpcError>) -> Value {
    match result {
        Ok(r) => json!({"jsonrpc": "2.0", "result": r, "id": id}),
        Err(e) => json!({"jsonrpc": "2.0", "error": e.to_json(), "id": id}),
    }
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// The `N` bytes that `s` spells in hex (either case), or `None`.
fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// A request taken apart: its id (`None` for a notification), method and params.
struct Request {
    id: Option<Value>,
    method: String,
    params: Value,
}

/// Checks that `v` is a JSON-RPC 2.0 request; the error carries the id to answer with.
fn parse_request(v: &Value) -> Result<Request, (Value, RpcError)> {
    let invalid = |id: Value, why: &str| {
        (
            id,
            RpcError::new(codes::INVALID_REQUEST, "invalid request").with_data(json!(why)),
        )
    };
    let Some(obj) = v.as_object() else {
        return Err(invalid(Value::Null, "not an object"));
    };
    let id = match obj.get("id") {
        None => None,
        Some(id @ (Value::Null | Value::String(_) | Value::Number(_))) => Some(id.clone()),
        Some(_) => {
            return Err(invalid(
                Value::Null,
                "the id must be a string, number or null",
            ));
        }
    };
    let answer_id = id.clone().unwrap_or(Value::Null);
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid(answer_id, "\"jsonrpc\" must be \"2.0\""));
    }
    let Some(method) = obj.get("method").and_then(Value::as_str) else {
        return Err(invalid(answer_id, "\"method\" must be a string"));
    };
    let params = match obj.get("params") {
        None => Value::Null,
        Some(p @ (Value::Object(_) | Value::Array(_))) => p.clone(),
        Some(_) => return Err(invalid(answer_id, "\"params\" must be an object or array")),
    };
    Ok(Request {
        id,
        method: method.to_owned(),
        params,
    })
}

/// The speaker's end of one API connection. See the module docs.
#[derive(Debug)]
pub struct RpcServer {
    key: HouseholdKey,
    nonce: Nonce,
    authenticated: bool,
    closed: bool,
    lines: Lines,
    output: Vec<u8>,
    stats: RpcStats,
}

impl RpcServer {
    /// A connection that has just been accepted: its challenge, with the fresh `nonce`, is
    /// queued.
    pub fn new(key: HouseholdKey, nonce: Nonce) -> RpcServer {
        let mut output = Vec::new();
        write_line(
            &mut output,
            &json!({
                "jsonrpc": "2.0",
                "method": "auth.challenge",
                "params": {"nonce": hex(&nonce), "protocol": RPC_PROTOCOL},
            }),
        );
        RpcServer {
            key,
            nonce,
            authenticated: false,
            closed: false,
            lines: Lines::default(),
            output,
            stats: RpcStats::default(),
        }
    }

    /// Whether the client has proved the household key.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// Whether the connection is over (a failed login): send what is queued, then close.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// What it has answered and refused.
    pub fn stats(&self) -> RpcStats {
        self.stats
    }

    /// Bytes of an unfinished request line held (never more than [`MAX_REQUEST_LEN`]).
    pub fn buffered(&self) -> usize {
        self.lines.buffered()
    }

    /// Takes bytes from the client and answers every whole request among them, running the
    /// methods of an authenticated client through `handler`.
    pub fn handle_input(&mut self, bytes: &[u8], handler: &mut dyn RpcHandler) {
        for line in self.lines.split(bytes) {
            if self.closed {
                return;
            }
            match line {
                Line::TooLong => {
                    self.stats.oversized += 1;
                    let e = RpcError::new(codes::INVALID_REQUEST, "request too long")
                        .with_data(json!(MAX_REQUEST_LEN));
                    self.answer(response(Value::Null, Err(e)));
                }
                Line::Text(text) => self.handle_line(&text, handler),
            }
        }
    }

    /// Queues a notification (a change others should hear of) for an authenticated client;
    /// nothing before that.
    pub fn notify(&mut self, method: &str, params: Value) {
        if self.authenticated && !self.closed {
            write_line(
                &mut self.output,
                &json!({"jsonrpc": "2.0", "method": method, "params": params}),
            );
        }
    }

    /// The bytes to send next, if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.output.is_empty()).then(|| std::mem::take(&mut self.output))
    }

    fn answer(&mut self, v: Value) {
        self.stats.answered += 1;
        write_line(&mut self.output, &v);
    }

    fn handle_line(&mut self, text: &[u8], handler: &mut dyn RpcHandler) {
        if text.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let value: Value = match serde_json::from_slice(text) {
            Ok(v) => v,
            Err(e) => {
                self.stats.parse_errors += 1;
                let err = RpcError::new(codes::PARSE_ERROR, "parse error")
                    .with_data(json!(e.to_string()));
                return self.answer(response(Value::Null, Err(err)));
            }
        };
        match value {
            Value::Array(batch) if batch.is_empty() => {
                self.stats.invalid += 1;
                let e = RpcError::new(codes::INVALID_REQUEST, "invalid request")
                    .with_data(json!("an empty batch"));
                self.answer(response(Value::Null, Err(e)));
            }
            Value::Array(batch) => {
                let answers: Vec<Value> = batch
                    .iter()
                    .filter_map(|v| self.handle_value(v, handler))
                    .collect();
                if !answers.is_empty() {
                    self.answer(Value::Array(answers));
                }
            }
            v => {
                if let Some(a) = self.handle_value(&v, handler) {
                    self.answer(a);
                }
            }
        }
    }

    /// The answer to one request, or `None` for a notification.
    fn handle_value(&mut self, v: &Value, handler: &mut dyn RpcHandler) -> Option<Value> {
        let req = match parse_request(v) {
            Ok(r) => r,
            Err((id, e)) => {
                self.stats.invalid += 1;
                return Some(response(id, Err(e)));
            }
        };
        let result = if req.method == "auth.login" {
            self.login(&req.params)
        } else if !self.authenticated {
            self.stats.unauthenticated += 1;
            Err(RpcError::unauthenticated())
        } else {
            handler.call(&req.method, &req.params)
        };
        req.id.map(|id| response(id, result))
    }

    fn login(&mut self, params: &Value) -> Result<Value, RpcError> {
        let field = |name: &str| params.get(name).and_then(Value::as_str);
        let (Some(nonce), Some(proof)) = (
            field("nonce").and_then(unhex::<16>),
            field("proof").and_then(unhex::<32>),
        ) else {
            return Err(RpcError::invalid_params(
                "auth.login takes {\"nonce\": 32 hex digits, \"proof\": 64 hex digits}",
            ));
        };
        if self.authenticated {
            return Err(RpcError::invalid_params("already authenticated"));
        }
        if !self
            .key
            .verify_mac_of(&[CLIENT_LABEL, &self.nonce, &nonce], &proof)
        {
            self.stats.unauthenticated += 1;
            self.closed = true;
            return Err(RpcError::unauthenticated());
        }
        self.authenticated = true;
        let answer = self.key.mac_of(&[SERVER_LABEL, &self.nonce, &nonce]);
        Ok(json!({"proof": hex(&answer)}))
    }
}

/// What an [`RpcClient`] tells the app.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The speaker proved the household key; calls may go now.
    Authenticated,
    /// The answer to the call with this id.
    Response {
        /// The id [`RpcClient::call`] returned.
        id: u64,
        /// Its result or error.
        result: Result<Value, RpcError>,
    },
    /// A notification from the speaker (a change).
    Notification {
        /// The method, e.g. `speaker.changed`.
        method: String,
        /// Its params.
        params: Value,
    },
    /// The connection failed: a wrong key on either side, or a speaker that does not speak
    /// the protocol. Close it.
    Failed(String),
}

/// The app's end of one API connection. See the module docs.
#[derive(Debug)]
pub struct RpcClient {
    key: HouseholdKey,
    nonce: Nonce,
    /// The server's nonce once its challenge came.
    challenge: Option<Nonce>,
    login_id: Option<u64>,
    authenticated: bool,
    closed: bool,
    next_id: u64,
    lines: Lines,
    output: Vec<u8>,
    events: VecDeque<ClientEvent>,
}

impl RpcClient {
    /// A client that will prove `key` with the fresh `nonce` once the speaker's challenge
    /// comes.
    pub fn new(key: HouseholdKey, nonce: Nonce) -> RpcClient {
        RpcClient {
            key,
            nonce,
            challenge: None,
            login_id: None,
            authenticated: false,
            closed: false,
            next_id: 1,
            lines: Lines::default(),
            output: Vec::new(),
            events: VecDeque::new(),
        }
    }

    /// Whether the speaker proved the key.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// Whether the connection is over.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Queues a call of `method` with `params` and returns its id; its answer comes as a
    /// [`ClientEvent::Response`]. Calls made before the speaker proved the key are queued
    /// and sent with the login, and are answered only if it succeeds.
    pub fn call(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        write_line(
            &mut self.output,
            &json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id}),
        );
        id
    }

    /// Takes bytes from the speaker.
    pub fn handle_input(&mut self, bytes: &[u8]) {
        for line in self.lines.split(bytes) {
            if self.closed {
                return;
            }
            match line {
                Line::TooLong => self.fail("the speaker sent a line over 64 KiB"),
                Line::Text(text) => match serde_json::from_slice::<Value>(&text) {
                    Ok(v) => self.handle_value(v),
                    Err(e) => self.fail(&format!("the speaker sent what is not JSON: {e}")),
                },
            }
        }
    }

    /// The bytes to send next, if any. Nothing but the login goes before the challenge.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.challenge.is_none() || self.output.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut self.output))
    }

    /// The next thing the app must act on, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    fn fail(&mut self, why: &str) {
        self.closed = true;
        self.output.clear();
        self.events.push_back(ClientEvent::Failed(why.to_owned()));
    }

    fn handle_value(&mut self, v: Value) {
        if let Some(method) = v.get("method").and_then(Value::as_str) {
            let params = v.get("params").cloned().unwrap_or(Value::Null);
            if method == "auth.challenge" {
                return self.answer_challenge(&params);
            }
            self.events.push_back(ClientEvent::Notification {
                method: method.to_owned(),
                params,
            });
            return;
        }
        let Some(id) = v.get("id").and_then(Value::as_u64) else {
            // An error about something unreadable we sent: nothing to match it with.
            if let Some(e) = v.get("error").and_then(RpcError::from_json) {
                self.fail(&format!("the speaker refused a request: {e}"));
            }
            return;
        };
        let result = match (v.get("result"), v.get("error")) {
            (Some(r), None) => Ok(r.clone()),
            (None, Some(e)) => Err(RpcError::from_json(e)
                .unwrap_or_else(|| RpcError::new(codes::INTERNAL_ERROR, e.to_string()))),
            _ => return self.fail("the speaker sent an answer with neither result nor error"),
        };
        if Some(id) == self.login_id {
            return self.check_login(result);
        }
        self.events.push_back(ClientEvent::Response { id, result });
    }

    fn answer_challenge(&mut self, params: &Value) {
        let Some(server) = params
            .get("nonce")
            .and_then(Value::as_str)
            .and_then(unhex::<16>)
        else {
            return self.fail("the speaker's challenge has no nonce");
        };
        if self.challenge.is_some() {
            return self.fail("the speaker challenged twice");
        }
        self.challenge = Some(server);
        let proof = self.key.mac_of(&[CLIENT_LABEL, &server, &self.nonce]);
        let id = self.next_id;
        self.next_id += 1;
        self.login_id = Some(id);
        // The login goes first, before any call queued already.
        let mut login = Vec::new();
        write_line(
            &mut login,
            &json!({
                "jsonrpc": "2.0",
                "method": "auth.login",
                "params": {"nonce": hex(&self.nonce), "proof": hex(&proof)},
                "id": id,
            }),
        );
        login.append(&mut self.output);
        self.output = login;
    }

    fn check_login(&mut self, result: Result<Value, RpcError>) {
        let Some(server) = self.challenge else {
            return self.fail("a login answer without a challenge");
        };
        let proof = match result {
            Ok(r) => r.get("proof").and_then(Value::as_str).and_then(unhex::<32>),
            Err(e) => return self.fail(&format!("the speaker refused the key: {e}")),
        };
        let genuine = proof.is_some_and(|p| {
            self.key
                .verify_mac_of(&[SERVER_LABEL, &server, &self.nonce], &p)
        });
        if !genuine {
            return self.fail("the speaker did not prove the household key");
        }
        self.authenticated = true;
        self.events.push_back(ClientEvent::Authenticated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        let bytes = [0x00, 0x7f, 0xa5, 0xff];
        assert_eq!(hex(&bytes), "007fa5ff");
        assert_eq!(unhex::<4>("007FA5ff"), Some(bytes));
        assert_eq!(unhex::<4>("007fa5f"), None);
        assert_eq!(unhex::<4>("007fa5fg"), None);
        assert_eq!(unhex::<4>("+07fa5ff"), None);
    }

    #[test]
    fn lines_split_anywhere_and_refuse_a_long_one_before_holding_it() {
        let mut lines = Lines::default();
        let mut got = Vec::new();
        let long = vec![b'z'; MAX_REQUEST_LEN];
        for piece in [&b"ab"[..], b"c\r\nd\n\nx", &long, &long, b"zz\nok\n"] {
            lines.push(piece, &mut |l| {
                got.push(match l {
                    Line::Text(t) => String::from_utf8(t).unwrap(),
                    Line::TooLong => "<too long>".into(),
                })
            });
            assert!(lines.buffered() <= MAX_REQUEST_LEN);
        }
        assert_eq!(got, ["abc", "d", "", "<too long>", "ok"]);
    }
}
