//! One hook call: a fresh store with a deny-all WASI context, fuel, an epoch deadline and a memory
//! cap; instantiate from the prepared `InstancePre`; call; drop everything. A trap therefore never
//! poisons a later call, and guest memory never accumulates.
//!
//! Only the called hook is looked up and type-checked in the fresh instance: the generated
//! bindings' `instantiate` type-checks all seven exports, records and all, on every instance,
//! which cost a microsecond per call for checks that the load already made.

use std::time::Duration;

use wasmtime::component::{ComponentNamedList, Lift, Lower, ResourceTable};
use wasmtime::{ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{Hook, v0_1, v0_2, v0_3};
use super::error::Problem;
use super::runtime::{EPOCH_TICK, INSTANCE_WAIT, POOLED_INSTANCES, Prepared, Runtime};

/// Bounds on every hook call.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Instructions (fuel units) a call may execute. A typical hook uses a few thousand.
    pub fuel: u64,
    /// Wall-clock backstop, counted in epoch ticks.
    pub deadline: Duration,
    /// Linear memory a call may grow to.
    pub memory_bytes: usize,
    /// Output a call may return, measured as its JSON encoding.
    pub output_bytes: usize,
    /// Guest stderr kept for error messages (panics).
    pub stderr_bytes: usize,
    pub stack_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            fuel: 50_000_000,
            deadline: Duration::from_millis(500),
            memory_bytes: 16 << 20,
            output_bytes: 256 << 10,
            stderr_bytes: 8 << 10,
            stack_bytes: 512 << 10,
        }
    }
}

/// The state of one call's store.
pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryCap,
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

// The contract's `types` interfaces have no functions: nothing to implement.
impl v0_1::latchkey::provider::types::Host for Sandbox {}
impl v0_2::latchkey::provider::types::Host for Sandbox {}
impl v0_3::latchkey::provider::types::Host for Sandbox {}

/// Caps linear memory and remembers whether the cap was hit, so the error can say so.
struct MemoryCap {
    limit: usize,
    exceeded: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            wasmtime::bail!("memory limit of {} bytes reached", self.limit);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Run `hook` with `params` on a fresh instance of `prepared` under `runtime`'s limits. `P` and
/// `R` are the hook's parameters and result as the contract types them (a mismatch is an error
/// that the tests of every hook catch).
pub(crate) fn call<P, R>(runtime: &Runtime, prepared: &Prepared, hook: Hook, params: P) -> Result<R, Problem>
where
    P: ComponentNamedList + Lower,
    (R,): ComponentNamedList + Lift,
    R: serde::Serialize,
{
    let index = prepared.hook_index(hook).ok_or_else(|| {
        Problem::Invalid(format!("it was built for contract {}, which has no `{}`", prepared.contract.package(), hook.name()))
    })?;
    let limits = runtime.limits();
    // Taken before the store and given back after it (locals drop in reverse order).
    let _instance = runtime.instances().take(INSTANCE_WAIT).ok_or(Problem::Busy {
        hook: hook.name(),
        instances: POOLED_INSTANCES,
        waited_secs: INSTANCE_WAIT.as_secs(),
    })?;
    let stderr = MemoryOutputPipe::new(limits.stderr_bytes);
    let wasi = WasiCtx::builder().stderr(stderr.clone()).allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false).build();
    let sandbox = Sandbox { wasi, table: ResourceTable::new(), memory: MemoryCap { limit: limits.memory_bytes, exceeded: false } };
    let mut store = Store::new(runtime.engine(), sandbox);
    store.limiter(|state| &mut state.memory);
    store.set_fuel(limits.fuel).expect("fuel is enabled on the engine");
    store.set_epoch_deadline(ticks(limits.deadline));

    let outcome = prepared.pre.instantiate(&mut store).and_then(|instance| {
        let func = instance.get_typed_func::<P, (R,)>(&mut store, index)?;
        func.call(&mut store, params)
    });
    let hook = hook.name();
    match outcome {
        Ok((value,)) => {
            let size = output_size(&value);
            if size > limits.output_bytes {
                return Err(Problem::OversizedOutput { hook, size, limit: limits.output_bytes });
            }
            Ok(value)
        }
        Err(error) => Err(classify(hook, limits, &error, store.data().memory.exceeded, &stderr)),
    }
}

fn ticks(deadline: Duration) -> u64 {
    (deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}

/// The size of `value`'s JSON encoding, counted without building it.
fn output_size<R: serde::Serialize>(value: &R) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Serializing plain records into a counter cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

fn classify(hook: &'static str, limits: &Limits, error: &wasmtime::Error, memory_exceeded: bool, stderr: &MemoryOutputPipe) -> Problem {
    if memory_exceeded {
        return Problem::OutOfMemory { hook, limit_mib: limits.memory_bytes >> 20 };
    }
    let guest_output = String::from_utf8_lossy(&stderr.contents()).trim().to_string();
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Problem::OutOfFuel { hook, fuel: limits.fuel },
        Some(Trap::Interrupt) => Problem::Timeout { hook, millis: limits.deadline.as_millis() as u64 },
        _ if !guest_output.is_empty() => Problem::Panicked { hook, message: panic_message(&guest_output) },
        Some(trap) => Problem::Trapped { hook, message: trap.to_string() },
        None => Problem::Trapped { hook, message: format!("{error:#}") },
    }
}

/// Rust's panic handler writes `thread '<unnamed>' (1) panicked at src/lib.rs:7:5:\n<message>`
/// (older toolchains leave out the thread number); turn it into `<message> (at src/lib.rs:7:5)`.
fn panic_message(stderr: &str) -> String {
    let mut text = stderr;
    if let Some(after_name) = text.strip_prefix("thread '").and_then(|rest| rest.split_once("' ")).map(|(_, rest)| rest) {
        text = after_name;
        if let Some((number, rest)) = text.strip_prefix('(').and_then(|rest| rest.split_once(") "))
            && number.chars().all(|c| c.is_ascii_digit())
        {
            text = rest;
        }
    }
    let mut lines = text.lines().filter(|line| !line.starts_with("note: run with `RUST_BACKTRACE"));
    let first = lines.next().unwrap_or_default().trim_end_matches(':');
    let message: Vec<&str> = lines.collect();
    match first.strip_prefix("panicked at ") {
        Some(location) if !message.is_empty() => format!("{} (at {location})", message.join(" ")),
        _ => std::iter::once(first).chain(message).collect::<Vec<_>>().join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_text_reads_as_one_line() {
        let with_thread_number = "thread '<unnamed>' (1) panicked at src/lib.rs:36:24:\nplugin panicked on purpose\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace";
        assert_eq!(panic_message(with_thread_number), "plugin panicked on purpose (at src/lib.rs:36:24)");
        let older_toolchain = "thread 'main' panicked at src/lib.rs:36:24:\nline one\nline two";
        assert_eq!(panic_message(older_toolchain), "line one line two (at src/lib.rs:36:24)");
        assert_eq!(panic_message("something else went wrong"), "something else went wrong");
    }

    #[test]
    fn calls_beyond_the_pool_wait_for_a_free_instance() {
        use super::super::builtin::BUILT_IN;
        use super::super::error::Origin;

        let runtime = Runtime::new(None, Limits::default()).unwrap();
        let standard = BUILT_IN.iter().find(|component| component.name == "standard").unwrap();
        let prepared = runtime.prepare(&Origin::BuiltIn(standard.name.to_string()), standard.bytes).unwrap();

        // Every instance in use, by calls that have instantiated and not yet returned.
        let held: Vec<_> = (0..POOLED_INSTANCES)
            .map(|_| {
                let slot = runtime.instances().take(Duration::ZERO).expect("a free instance");
                let wasi = WasiCtx::builder().build();
                let sandbox = Sandbox { wasi, table: ResourceTable::new(), memory: MemoryCap { limit: 16 << 20, exceeded: false } };
                let mut store = Store::new(runtime.engine(), sandbox);
                store.set_fuel(1_000_000).unwrap();
                store.set_epoch_deadline(1 << 40);
                let instance = prepared.pre.instantiate(&mut store).expect("an instance from the pool");
                (instance, store, slot)
            })
            .collect();

        // More calls than the pool holds, all at once: they wait, then each gets an instance.
        let callers: Vec<_> = (0..POOLED_INSTANCES * 2)
            .map(|_| {
                let (runtime, prepared) = (runtime.clone(), prepared.clone());
                std::thread::spawn(move || {
                    call::<(), super::super::bindings::ProviderInfo>(&runtime, &prepared, Hook::Info, ()).map(|info| info.id)
                })
            })
            .collect();
        drop(held);
        for caller in callers {
            assert_eq!(caller.join().unwrap().expect("the call waited for an instance and ran"), "standard");
        }
    }

    #[test]
    fn deadline_is_at_least_one_tick() {
        assert_eq!(ticks(Duration::from_millis(1)), 1);
        assert_eq!(ticks(Duration::from_millis(500)), 50);
    }
}
