//! latchkey as an MCP client of remote servers (Streamable HTTP, through rmcp), with OAuth tokens
//! from [`crate::oauth`]: what `latchkey tools` uses, and the remote upstream of the gateway.
//!
//! - [`bearer`]: an rmcp HTTP client that sends the current token with every request and, when
//!   the server refuses it, refreshes once and retries;
//! - [`remote`]: one server connection (connect, list tools, call a tool) that answers a 401 or a
//!   403 `insufficient_scope` by authorizing and retrying, a bounded number of times;
//! - [`credential`]: the token source and authorizer for a server known by its URL: stored
//!   credentials, discovery from the server's challenge, refresh, and sign-in.

pub mod bearer;
pub mod credential;
pub mod remote;
