//! The household: what speakers of one home share beyond a single group's stream.
//!
//! - [`rpc`]: the control API's transport, JSON-RPC 2.0 over lines of a TCP connection,
//!   authenticated by the household key before anything else.
//! - [`rpc_tcp`]: the same on real sockets: a speaker's listener, an app's blocking
//!   connection.

pub mod rpc;
pub mod rpc_tcp;

pub use rpc::{ClientEvent, RpcClient, RpcError, RpcHandler, RpcServer, RpcStats};
pub use rpc_tcp::{RpcCallError, RpcConnection, RpcListener, SharedHandler};
