//! latchkey: an MCP gateway and OAuth client for pre-registered OAuth clients, whose
//! provider-specific behaviour lives in sandboxed WebAssembly components.
//!
//! The modules follow the pipeline: [`catalog`] says which MCP servers exist and how each gets
//! its OAuth tokens; [`plugins`] loads the provider components (built-in and dropped in) and calls
//! their hooks in a sandbox; [`oauth`] signs in, refreshes and revokes with them; [`store`] keeps
//! secrets and credentials; [`mcp`] talks to remote MCP servers with those tokens; [`gateway`]
//! serves the catalog's servers as one; [`clients`] puts the gateway into AI clients'
//! configuration; [`doctor`] checks all of it at once; [`paths`] says where files live; [`cli`] only parses arguments and prints.

pub mod catalog;
pub mod cli;
pub mod clients;
pub mod doctor;
pub mod gateway;
pub mod mcp;
pub mod oauth;
pub mod paths;
pub mod plugins;
pub mod store;
