//! The household: what speakers of one home share beyond a single group's stream.
//!
//! - [`rpc`]: the control API's transport, JSON-RPC 2.0 over lines of a TCP connection,
//!   authenticated by the household key before anything else.

pub mod rpc;

pub use rpc::{ClientEvent, RpcClient, RpcError, RpcHandler, RpcServer, RpcStats};
