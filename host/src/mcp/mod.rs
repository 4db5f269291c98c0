//! latchkey as an MCP client of remote servers (Streamable HTTP, through rmcp), with OAuth tokens
//! from [`crate::oauth`]: the one client that `latchkey tools --url` and the gateway's remote
//! upstreams share, each with its own credential.
//!
//! - [`remote`]: the client: connect, and run requests, answering a 401 or a 403
//!   `insufficient_scope` by authorizing and retrying, a bounded number of times;
//! - [`bearer`]: the rmcp HTTP client under it, which sends the current token with every request
//!   and, when the server refuses it, refreshes once and retries;
//! - [`credential`]: the credential of a server known by its URL (`tools --url`): stored
//!   credentials, discovery from the server's challenge, refresh, and sign-in in the browser;
//! - [`catalog_credential`]: the credential of a catalog server (the gateway): the stored token,
//!   refreshed once on a refusal, and a report instead of a sign-in.

pub mod bearer;
pub mod catalog_credential;
pub mod credential;
pub mod remote;
