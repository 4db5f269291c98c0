//! The one wasmtime engine of the process, and how components are turned into ready-to-instantiate
//! providers.
//!
//! Loading a component: check the header (wasm at all? a component, not a core module?), compile
//! it or take its compiled code from the [`cache`](super::cache), check what it imports and
//! exports against the contract, and pre-link it into an `InstancePre` that every call
//! instantiates into a fresh store (see [`sandbox`](super::sandbox)).

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker, types::ComponentItem};
use wasmtime::{Config, Engine};

use super::bindings::{CONTRACT_PACKAGE, Contract, Hook, POST_TOKEN_INTERFACE, PROVIDER_INTERFACE, v0_1, v0_2, v0_3};
use super::cache::CompiledCache;
use super::error::{Origin, PluginError, Problem};
use super::sandbox::{Limits, Sandbox};

/// How often the epoch ticks; call deadlines are counted in ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Interfaces a provider may import, by prefix. Rust's standard library on wasm32-wasip2 imports
/// `wasi:io` and `wasi:cli` (stdio, environment, exit) and, for `HashMap`, `wasi:random`; all of
/// them are linked to a context that grants nothing. Files, sockets, clocks and HTTP are refused.
pub const ALLOWED_IMPORTS: &[&str] = &["wasi:io/", "wasi:cli/", "wasi:random/", "latchkey:provider/types@"];

/// The shared engine and linker, the call limits and the compiled-code cache.
pub struct Runtime {
    engine: Engine,
    linker: Linker<Sandbox>,
    limits: Limits,
    cache: Option<CompiledCache>,
    /// Every call holds one while its store lives (also without the pool: the bound is the same).
    instances: Instances,
}

/// A component that passed every load-time check, ready to be instantiated per call.
#[derive(Clone)]
pub struct Prepared {
    pub(crate) pre: InstancePre<Sandbox>,
    /// The contract version the component was built for, whose bindings its calls go through.
    pub contract: Contract,
    /// Where each [`Hook`] is among the component's exports, in the order of [`Hook::PROVIDER`]
    /// then, for components that have them, [`Hook::POST_TOKEN`].
    hooks: Vec<ComponentExportIndex>,
    /// Lower-case hex SHA-256 of the component's bytes.
    pub sha256: String,
    /// Whether the compiled code came from the cache.
    pub from_cache: bool,
}

impl Runtime {
    /// A runtime whose compiled code is cached in `cache_dir` (created private if missing), or not
    /// cached when `None`.
    pub fn new(cache_dir: Option<PathBuf>, limits: Limits) -> anyhow::Result<Arc<Runtime>> {
        let engine = match Engine::new(&engine_config(&limits, true)) {
            Ok(engine) => engine,
            // The pool reserves address space up front, which some systems (39-bit address
            // spaces, strict overcommit) refuse; instances are then allocated one by one.
            Err(error) => {
                tracing::debug!("pooling allocator unavailable ({error}); allocating instances on demand");
                Engine::new(&engine_config(&limits, false)).map_err(|e| anyhow::anyhow!("cannot start the WebAssembly engine: {e}"))?
            }
        };
        spawn_epoch_ticker(&engine);

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| anyhow::anyhow!("linking WASI: {e}"))?;
        // Each version's `types` interface, which components import (it has no functions).
        v0_1::ProviderComponent::add_to_linker::<Sandbox, wasmtime::component::HasSelf<Sandbox>>(&mut linker, |state| state)
            .and_then(|()| {
                v0_2::ProviderComponent::add_to_linker::<Sandbox, wasmtime::component::HasSelf<Sandbox>>(&mut linker, |state| state)
            })
            .and_then(|()| {
                v0_3::ProviderComponent::add_to_linker::<Sandbox, wasmtime::component::HasSelf<Sandbox>>(&mut linker, |state| state)
            })
            .map_err(|e| anyhow::anyhow!("linking the provider contract: {e}"))?;

        let cache = match cache_dir {
            Some(dir) => Some(CompiledCache::open(dir, &engine)?),
            None => None,
        };
        Ok(Arc::new(Runtime { engine, linker, limits, cache, instances: Instances::new(POOLED_INSTANCES) }))
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(crate) fn instances(&self) -> &Instances {
        &self.instances
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Check and prepare a component. Every problem names `origin` and says how to fix it.
    pub fn prepare(&self, origin: &Origin, bytes: &[u8]) -> Result<Prepared, PluginError> {
        self.prepare_hashed(origin, bytes, hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)))
    }

    /// [`Runtime::prepare`] for `bytes` whose SHA-256 is known already (a built-in's): with its
    /// compiled code in the cache, the bytes are not read at all, so a built-in's embedded bytes
    /// stay out of memory (the kernel maps a binary's pages as they are first read).
    pub fn prepare_hashed(&self, origin: &Origin, bytes: &[u8], sha256: String) -> Result<Prepared, PluginError> {
        let fail = |problem| PluginError::new(origin, problem);
        let (component, from_cache) = self.compile(&sha256, bytes).map_err(fail)?;
        let contract = check_exports(&self.engine, &component).map_err(fail)?;
        check_imports(&self.engine, &component).map_err(fail)?;
        let instance_pre = self.linker.instantiate_pre(&component).map_err(|e| fail(Problem::Invalid(format!("{e:#}"))))?;
        // Type-checks every export against its version of the contract, once; calls then check
        // only their own.
        let mismatch = |e: wasmtime::Error| {
            fail(Problem::Invalid(format!(
                "its exports do not match {} ({e:#}); rebuild it with an SDK of that version, or with the current one ({})",
                contract.package(),
                Contract::CURRENT.package()
            )))
        };
        let pre = match contract {
            Contract::V0_1 => v0_1::ProviderComponentPre::new(instance_pre).map_err(mismatch)?.instance_pre().clone(),
            Contract::V0_2 => v0_2::ProviderComponentPre::new(instance_pre).map_err(mismatch)?.instance_pre().clone(),
            Contract::V0_3 => v0_3::ProviderComponentPre::new(instance_pre).map_err(mismatch)?.instance_pre().clone(),
        };
        let hooks = hook_indices(&component, contract).map_err(fail)?;
        Ok(Prepared { pre, contract, hooks, sha256, from_cache })
    }

    /// The compiled component: from the cache (whose code was compiled from these very bytes,
    /// checked then), else checked and compiled now.
    fn compile(&self, sha256: &str, bytes: &[u8]) -> Result<(Component, bool), Problem> {
        if let Some(cache) = &self.cache
            && let Some(component) = cache.load(&self.engine, sha256)
        {
            return Ok((component, true));
        }
        check_header(bytes)?;
        let component = Component::new(&self.engine, bytes).map_err(|e| Problem::Invalid(format!("{e:#}")))?;
        if let Some(cache) = &self.cache {
            // A cache that cannot be written only costs speed; the component still loads.
            if let Err(error) = cache.store(sha256, &component) {
                tracing::debug!("not caching compiled provider code: {error:#}");
            }
        }
        Ok((component, false))
    }
}

impl Prepared {
    /// Where `hook` is; `None` for a hook of an interface the component's version does not have.
    pub(crate) fn hook_index(&self, hook: Hook) -> Option<&ComponentExportIndex> {
        self.hooks.get(hook as usize)
    }
}

/// The export index of every hook, looked up the way the generated bindings look them up (so a
/// compatible 0.1.x interface is found under the 0.1.0 name).
fn hook_indices(component: &Component, contract: Contract) -> Result<Vec<ComponentExportIndex>, Problem> {
    let missing = |name: &str| Problem::Invalid(format!("it does not export `{name}`; rebuild it with the current SDK"));
    let mut interfaces = vec![(PROVIDER_INTERFACE, &Hook::PROVIDER[..])];
    if contract.has_post_token() {
        interfaces.push((POST_TOKEN_INTERFACE, &Hook::POST_TOKEN[..]));
    }
    let mut indices = Vec::new();
    for (interface, hooks) in interfaces {
        let interface_name = format!("{interface}@{}", contract.version());
        let interface = component.get_export_index(None, &interface_name).ok_or_else(|| missing(&interface_name))?;
        for hook in hooks {
            indices.push(component.get_export_index(Some(&interface), hook.function()).ok_or_else(|| missing(hook.name()))?);
        }
    }
    Ok(indices)
}

/// Hook calls that may run at the same moment; each slot costs address space reserved when the
/// engine starts. A call beyond them waits for one to finish (calls take microseconds, at most the
/// call deadline), so that a burst, such as a gateway refreshing every credential at start, is
/// slowed down, never failed after the authorization server has already answered.
pub(crate) const POOLED_INSTANCES: u32 = 32;

/// How long a call waits for a free instance before it fails: only a pool busy with calls that
/// each run to their deadline comes near it.
pub(crate) const INSTANCE_WAIT: Duration = Duration::from_secs(30);

/// The instances not in use, as a counting semaphore for the blocking threads that run hooks.
pub(crate) struct Instances {
    free: Mutex<u32>,
    freed: Condvar,
}

/// One instance taken from [`Instances`]; dropping it gives it back.
pub(crate) struct InstanceSlot<'a> {
    instances: &'a Instances,
}

impl Instances {
    fn new(count: u32) -> Instances {
        Instances { free: Mutex::new(count), freed: Condvar::new() }
    }

    /// Take an instance, waiting at most `wait` for one; `None` when none came free.
    pub(crate) fn take(&self, wait: Duration) -> Option<InstanceSlot<'_>> {
        let free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut free, _) = self.freed.wait_timeout_while(free, wait, |free| *free == 0).unwrap_or_else(PoisonError::into_inner);
        if *free == 0 {
            return None;
        }
        *free -= 1;
        Some(InstanceSlot { instances: self })
    }
}

impl Drop for InstanceSlot<'_> {
    fn drop(&mut self) {
        *self.instances.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.instances.freed.notify_one();
    }
}

/// The engine's settings: fuel and epochs for the call limits, and a pooling allocator whose
/// linear memories stay mapped between calls, so that a fresh instance costs a reset instead of
/// fresh page faults.
///
/// The reset is what a call's teardown costs. By default wasmtime memsets the lowest
/// `linear_memory_keep_resident` bytes of the memory, which for a Rust guest is its whole initial
/// memory (1 MiB of stack below the data, about 1.1 MiB in all): some 25 µs per call, most of a
/// hook call's time, for the handful of pages a call writes (the top of the stack, `.data`, a bit
/// of heap). Linux's `PAGEMAP_SCAN` (6.7 and later) finds the pages that were written, so only
/// those are restored; on older kernels `Auto` falls back to the memset.
fn engine_config(limits: &Limits, pooled: bool) -> Config {
    let mut config = Config::new();
    config.consume_fuel(true).epoch_interruption(true).max_wasm_stack(limits.stack_bytes).wasm_component_model(true);
    if pooled {
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(POOLED_INSTANCES)
            .total_core_instances(POOLED_INSTANCES * 8)
            .total_memories(POOLED_INSTANCES)
            .total_tables(POOLED_INSTANCES * 2)
            .total_stacks(POOLED_INSTANCES)
            .max_memory_size(limits.memory_bytes)
            .linear_memory_keep_resident(2 << 20)
            .table_keep_resident(64 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Tick the engine's epoch until the engine is dropped; each store's deadline counts these ticks.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("latchkey-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}

/// `\0asm` followed by the binary format's version and layer: 1/0 for core modules, 0xd/1 for
/// components.
fn check_header(bytes: &[u8]) -> Result<(), Problem> {
    const CORE_MODULE: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    const COMPONENT_LAYER: [u8; 2] = [0x01, 0x00];
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        let start: String = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
        let shown = if start.is_empty() { "nothing: the file is empty".to_string() } else { format!("bytes {start}") };
        return Err(Problem::NotWasm(shown));
    }
    if bytes[..8] == CORE_MODULE {
        return Err(Problem::CoreModule);
    }
    if bytes[6..8] != COMPONENT_LAYER {
        return Err(Problem::Invalid("an unknown WebAssembly binary layer or version".into()));
    }
    Ok(())
}

/// The component must export `latchkey:provider/provider` at a version this host implements;
/// which one it is.
fn check_exports(engine: &Engine, component: &Component) -> Result<Contract, Problem> {
    let exports: Vec<String> = component.component_type().exports(engine).map(|(name, _)| name.to_string()).collect();
    let provider_exports: Vec<&String> = exports.iter().filter(|name| name.split('@').next() == Some(PROVIDER_INTERFACE)).collect();
    match provider_exports.first() {
        None => Err(Problem::WrongWorld {
            expected: format!("{PROVIDER_INTERFACE}@{}", Contract::CURRENT.version()),
            found: if exports.is_empty() {
                "nothing".to_string()
            } else {
                exports.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
            },
        }),
        Some(name) => {
            let version = name.split_once('@').map(|(_, version)| version).unwrap_or("");
            Contract::of(version).ok_or_else(|| {
                let found =
                    if version.is_empty() { format!("{CONTRACT_PACKAGE} (unversioned)") } else { format!("{CONTRACT_PACKAGE}@{version}") };
                Problem::UnsupportedContract { found, supported: Contract::supported() }
            })
        }
    }
}

fn check_imports(engine: &Engine, component: &Component) -> Result<(), Problem> {
    let forbidden: Vec<String> = component
        .component_type()
        .imports(engine)
        .filter(|(name, item)| !matches!(item.ty, ComponentItem::Type(_)) && !ALLOWED_IMPORTS.iter().any(|prefix| name.starts_with(prefix)))
        .map(|(name, _)| format!("`{name}`"))
        .collect();
    if forbidden.is_empty() {
        Ok(())
    } else {
        Err(Problem::ForbiddenImports {
            forbidden,
            allowed: ALLOWED_IMPORTS.iter().map(|prefix| format!("{}*", prefix.trim_end_matches('@'))).collect::<Vec<_>>().join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_versions_follow_component_model_semver() {
        assert_eq!(Contract::of("0.1.0"), Some(Contract::V0_1));
        assert_eq!(Contract::of("0.1.7"), Some(Contract::V0_1));
        assert_eq!(Contract::of("0.2.0"), Some(Contract::V0_2));
        assert_eq!(Contract::of("0.2.3-pre"), Some(Contract::V0_2));
        assert_eq!(Contract::of("0.3.0"), Some(Contract::V0_3));
        assert_eq!(Contract::of("0.4.0"), None);
        assert_eq!(Contract::of("1.0.0"), None);
        assert_eq!(Contract::of(""), None);
        assert_eq!(Contract::supported(), "latchkey:provider@0.1.0, @0.2.0 and @0.3.0");
    }

    #[test]
    fn headers_are_told_apart() {
        assert!(matches!(check_header(b"hello world"), Err(Problem::NotWasm(_))));
        assert!(matches!(check_header(b""), Err(Problem::NotWasm(text)) if text.contains("empty")));
        assert!(matches!(check_header(b"\0asm\x01\0\0\0rest"), Err(Problem::CoreModule)));
        assert!(check_header(b"\0asm\x0d\0\x01\0rest").is_ok());
    }
}
