//! latchkey: an MCP gateway and OAuth client for pre-registered OAuth clients, whose
//! provider-specific behaviour lives in sandboxed WebAssembly components.
//!
//! The modules follow the pipeline: [`catalog`] says which MCP servers exist and how each gets
//! its OAuth tokens; [`plugins`] loads the provider components (built-in and dropped in) and calls
//! their hooks in a sandbox; [`mcp`] talks to remote MCP servers with those tokens; [`paths`]
//! says where files live; [`cli`] only parses arguments and prints.

pub mod catalog;
pub mod cli;
pub mod gateway;
pub mod mcp;
pub mod oauth;
pub mod paths;
pub mod plugins;
pub mod store;
