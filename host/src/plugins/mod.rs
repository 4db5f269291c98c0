//! The provider runtime: sandboxed WebAssembly components that carry each OAuth provider's quirks.
//!
//! - [`runtime`]: the process's one wasmtime engine; checking, compiling (with the [`cache`]) and
//!   pre-linking components against their version of the contract (`wit/since_vX.Y.Z/`), each
//!   published version's [`bindings`], converted to the current types in [`since_v0_1`].
//! - [`sandbox`]: one hook call, in a fresh store with deny-all WASI, fuel, a deadline and a memory cap.
//! - [`provider`]: a loaded provider and its typed hooks, whose output is checked.
//! - [`registry`]: the built-in providers plus the drop-ins from the providers folder; a drop-in
//!   replaces a built-in only when the user allowed it ([`replacements`]).
//! - [`watch`]: hot reload of the drop-ins while a long-running process (the gateway) runs.
//! - [`vectors`] and [`scaffold`]: the authoring kit, test vectors run in the production sandbox
//!   and the starting point of a new provider crate (`latchkey provider test | new`).
//!
//! Calls are synchronous and take microseconds. From async code, run them with
//! `tokio::task::spawn_blocking`: WASI's synchronous bindings must not block a runtime worker.

pub mod bindings;
mod builtin;
mod cache;
pub mod error;
pub mod provider;
pub mod registry;
pub mod replacements;
pub mod runtime;
pub mod sandbox;
pub mod scaffold;
mod since_v0_1;
pub mod vectors;
pub mod watch;

use std::sync::Arc;

pub use bindings::{
    Account, ClientAuth, ConfigKey, Contract, Endpoints, Failure, FailureKind, Flow, HttpRequest, HttpResponse, LoopbackRedirect, Params,
    Pkce, PostTokenResult, ProviderInfo, Redirect, RefreshPolicy, RequestKind, RevocationEndpoint, Site, TokenContext, TokenSet,
};
pub use error::{Origin, PluginError, Problem};
pub use provider::{CallError, Provider, request_origins};
pub use registry::{LookupError, Registry, UnknownProvider};
pub use runtime::Runtime;
pub use sandbox::Limits;
pub use watch::LiveRegistry;

use crate::paths::Paths;

/// The runtime with the user's compiled-code cache, and the registry of built-ins (loaded when first
/// used) and drop-ins.
pub fn load(paths: &Paths) -> anyhow::Result<(Arc<Runtime>, Registry)> {
    let runtime = Runtime::new(Some(paths.compiled_dir()), Limits::default())?;
    let registry = Registry::load(&runtime, Some(&paths.providers_dir()));
    Ok((runtime, registry))
}
