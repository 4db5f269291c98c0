//! What can go wrong with a provider component, in terms a provider author or user can act on.

use std::fmt;
use std::path::PathBuf;

/// Where a provider component came from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "path", rename_all = "kebab-case")]
pub enum Origin {
    /// Embedded in the latchkey binary.
    BuiltIn(String),
    /// A file: a drop-in, or one being verified or tested.
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::BuiltIn(name) => write!(f, "built-in {name}.wasm"),
            Origin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A provider that could not be loaded or whose hook failed.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {problem}")]
pub struct PluginError {
    pub origin: Origin,
    pub problem: Problem,
}

/// The cause of a [`PluginError`].
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("cannot read the file: {0}")]
    Unreadable(std::io::Error),

    #[error(
        "not a WebAssembly file (it starts with {0}); a provider is a component built with \
         `cargo build --target wasm32-wasip2 --release`"
    )]
    NotWasm(String),

    #[error(
        "a core WebAssembly module, not a component; build the provider for the wasm32-wasip2 \
         target (not wasm32-unknown-unknown or wasm32-wasip1), which produces a component"
    )]
    CoreModule,

    #[error(
        "a component built for another world: it does not export `{expected}` (it exports {found}); \
         providers implement the `provider-component` world of latchkey's wit/since_v0.2.0/provider.wit"
    )]
    WrongWorld { expected: String, found: String },

    #[error(
        "built for contract {found}, but this latchkey supports {supported}; rebuild the provider \
         with latchkey-provider-sdk, which builds for the newest of them, or use a latchkey release that supports {found}"
    )]
    UnsupportedContract { found: String, supported: String },

    #[error(
        "imports {}, which providers may not use: a provider gets no files, network or clock, \
         only {}; remove the code that needs it (std::fs, std::net, SystemTime, Instant…)",
        .forbidden.join(", "),
        .allowed
    )]
    ForbiddenImports { forbidden: Vec<String>, allowed: String },

    #[error(
        "its id `{id}` is already taken by {first}, which was loaded first (drop-ins load in name \
         order); remove one of the two files, or give one of the providers another id"
    )]
    DuplicateId { id: String, first: Origin },

    #[error(
        "its id `{id}` is the built-in provider `{id}`'s, and a drop-in replaces a built-in only when asked to, so the \
         built-in is used; to replace it with this file, run `latchkey provider install --replace {}`, or give the \
         provider another id",
        .file.display()
    )]
    ReplacesBuiltIn { id: String, file: PathBuf },

    #[error("not a valid component: {0}")]
    Invalid(String),

    #[error("`{hook}` ran out of fuel ({fuel} instructions): it probably loops forever")]
    OutOfFuel { hook: &'static str, fuel: u64 },

    #[error("`{hook}` did not finish within {millis} ms")]
    Timeout { hook: &'static str, millis: u64 },

    #[error("`{hook}` tried to grow its memory beyond the {limit_mib} MiB limit: it probably allocates without bound")]
    OutOfMemory { hook: &'static str, limit_mib: usize },

    #[error("`{hook}` panicked: {message}")]
    Panicked { hook: &'static str, message: String },

    #[error("`{hook}` trapped: {message}")]
    Trapped { hook: &'static str, message: String },

    #[error("`{hook}` returned {size} bytes of output, more than the {limit} bytes allowed")]
    OversizedOutput { hook: &'static str, size: usize, limit: usize },

    #[error("`{hook}` returned invalid output: {message}")]
    InvalidOutput { hook: &'static str, message: String },

    #[error(
        "`{hook}` waited {waited_secs} s for one of the {instances} sandbox instances, and all stayed busy with other \
         calls; run the command again (a burst of calls frees them within seconds)"
    )]
    Busy { hook: &'static str, instances: u32, waited_secs: u64 },
}

impl PluginError {
    pub fn new(origin: &Origin, problem: Problem) -> PluginError {
        PluginError { origin: origin.clone(), problem }
    }
}
