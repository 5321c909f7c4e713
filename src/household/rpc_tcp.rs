//! The control API on real sockets: a speaker's [`RpcListener`] and an app's blocking
//! [`RpcConnection`], both thin drivers of the sans-IO [`RpcServer`] and [`RpcClient`].
//!
//! The listener serves each connection on a thread of its own, at most
//! [`MAX_CONNECTIONS`] at once (one more is closed at once); a connection that has not
//! logged in within [`LOGIN_TIMEOUT`] is closed, so idle or trickling clients cannot hold
//! the slots. Calls run one at a time through the speaker's handler (a mutex), so a method
//! sees the speaker as the previous one left it. [`RpcListener::notify`] sends a change to
//! every logged-in connection.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::rpc::{ClientEvent, RpcClient, RpcError, RpcHandler, RpcServer};
use crate::control::{HouseholdKey, new_nonce};

/// Most connections a listener serves at once.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a connection may take to log in before it is closed.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the threads look at their shutdown flag and their notifications.
const TICK: Duration = Duration::from_millis(20);

/// A speaker's handler, shared by its connections.
pub type SharedHandler = Arc<Mutex<dyn RpcHandler + Send>>;

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the listener's threads share.
struct Shared {
    key: HouseholdKey,
    handler: SharedHandler,
    shutdown: AtomicBool,
    open: AtomicUsize,
    /// One sender per open connection, for notifications.
    subscribers: Mutex<Vec<Sender<(String, Value)>>>,
}

/// A speaker's control-API port. Stops (and closes every connection) on drop.
pub struct RpcListener {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RpcListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcListener")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RpcListener {
    /// Listens on `addr`, running every logged-in client's calls through `handler`.
    pub fn bind(
        addr: SocketAddr,
        key: HouseholdKey,
        handler: SharedHandler,
    ) -> std::io::Result<RpcListener> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            key,
            handler,
            shutdown: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            subscribers: Mutex::new(Vec::new()),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("lockstep-rpc".into())
            .spawn(move || accept(&s, &listener))?;
        Ok(RpcListener {
            addr,
            shared,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.shared.open.load(Ordering::Acquire)
    }

    /// Announces a change to every logged-in connection.
    pub fn notify(&self, method: &str, params: Value) {
        lock(&self.shared.subscribers)
            .retain(|tx| tx.send((method.to_owned(), params.clone())).is_ok());
    }
}

impl Drop for RpcListener {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept(shared: &Arc<Shared>, listener: &TcpListener) {
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    while !shared.shutdown.load(Ordering::Acquire) {
        threads.retain(|t| !t.is_finished());
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(TICK);
                continue;
            }
            Err(_) => {
                std::thread::sleep(TICK);
                continue;
            }
        };
        if shared.open.load(Ordering::Acquire) >= MAX_CONNECTIONS {
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(nonce) = new_nonce() else {
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        };
        shared.open.fetch_add(1, Ordering::AcqRel);
        let (tx, rx) = channel();
        lock(&shared.subscribers).push(tx);
        let s = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("lockstep-rpc-conn".into())
            .spawn(move || {
                serve(&s, stream, nonce, &rx);
                s.open.fetch_sub(1, Ordering::AcqRel);
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(_) => {
                shared.open.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
    for t in threads {
        let _ = t.join();
    }
}

/// Serves one connection until it closes, fails its login, or the listener stops.
fn serve(
    shared: &Shared,
    mut stream: TcpStream,
    nonce: [u8; 16],
    notes: &Receiver<(String, Value)>,
) {
    if stream.set_read_timeout(Some(TICK)).is_err() {
        return;
    }
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let mut server = RpcServer::new(shared.key.clone(), nonce);
    let started = Instant::now();
    let mut buf = [0u8; 16 * 1024];
    loop {
        while let Some(out) = server.poll_transmit() {
            if stream.write_all(&out).is_err() {
                return;
            }
        }
        if server.is_closed() || shared.shutdown.load(Ordering::Acquire) {
            break;
        }
        if !server.is_authenticated() && started.elapsed() > LOGIN_TIMEOUT {
            break;
        }
        while let Ok((method, params)) = notes.try_recv() {
            server.notify(&method, params);
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let mut handler = lock(&shared.handler);
                server.handle_input(&buf[..n], &mut *handler);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// Why a call over an [`RpcConnection`] did not give a result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcCallError {
    /// The connection failed.
    #[error("control API connection: {0}")]
    Io(#[from] std::io::Error),
    /// No answer in time.
    #[error("no answer from the speaker within {0:?}")]
    Timeout(Duration),
    /// The login failed on either side, or the speaker broke the protocol.
    #[error("{0}")]
    Failed(String),
    /// The speaker answered with an error.
    #[error("the speaker answered: {0}")]
    Rpc(RpcError),
}

/// An app's blocking connection to one speaker's control API.
#[derive(Debug)]
pub struct RpcConnection {
    stream: TcpStream,
    client: RpcClient,
    notifications: std::collections::VecDeque<(String, Value)>,
    answers: Vec<(u64, Result<Value, RpcError>)>,
}

impl RpcConnection {
    /// Connects to `addr` and logs in with `key`, waiting up to `timeout` in all.
    pub fn connect(
        addr: SocketAddr,
        key: HouseholdKey,
        timeout: Duration,
    ) -> Result<RpcConnection, RpcCallError> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        let mut c = RpcConnection {
            stream,
            client: RpcClient::new(key, new_nonce()?),
            notifications: Default::default(),
            answers: Vec::new(),
        };
        let deadline = Instant::now() + timeout;
        while !c.client.is_authenticated() {
            c.pump(deadline, timeout)?;
        }
        Ok(c)
    }

    /// Calls `method` with `params` and waits up to `timeout` for its answer. Notifications
    /// that come meanwhile are kept for [`next_notification`](Self::next_notification).
    pub fn call(
        &mut self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, RpcCallError> {
        let id = self.client.call(method, params);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.answers.iter().position(|(a, _)| *a == id) {
                let (_, result) = self.answers.swap_remove(i);
                return result.map_err(RpcCallError::Rpc);
            }
            self.pump(deadline, timeout)?;
        }
    }

    /// The next notification, waiting up to `timeout`; `None` if none came.
    pub fn next_notification(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(String, Value)>, RpcCallError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(n) = self.notifications.pop_front() {
                return Ok(Some(n));
            }
            match self.pump(deadline, timeout) {
                Ok(()) => {}
                Err(RpcCallError::Timeout(_)) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends what is queued, then reads once (until `deadline`) and sorts what came.
    fn pump(&mut self, deadline: Instant, timeout: Duration) -> Result<(), RpcCallError> {
        while let Some(out) = self.client.poll_transmit() {
            self.stream.write_all(&out)?;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RpcCallError::Timeout(timeout));
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut buf = [0u8; 16 * 1024];
        let n = match self.stream.read(&mut buf) {
            Ok(0) => {
                return Err(RpcCallError::Failed(
                    "the speaker closed the connection".into(),
                ));
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(RpcCallError::Timeout(timeout));
            }
            Err(e) => return Err(e.into()),
        };
        self.client.handle_input(&buf[..n]);
        while let Some(e) = self.client.poll_event() {
            match e {
                ClientEvent::Authenticated => {}
                ClientEvent::Response { id, result } => self.answers.push((id, result)),
                ClientEvent::Notification { method, params } => {
                    self.notifications.push_back((method, params));
                }
                ClientEvent::Failed(why) => return Err(RpcCallError::Failed(why)),
            }
        }
        Ok(())
    }
}
