//! Provider runtime benchmarks: `cargo bench -p latchkey --bench plugins`.
//!
//! Prints, for each operation, the median and 99th percentile of many timed runs:
//! - one hook call through the runtime (fresh store and instance from the cached `InstancePre`,
//!   fuel, deadline and memory cap, output checks) — the production path;
//! - the same hook as plain native Rust (the Google provider crate linked directly), for reference;
//! - loading every built-in provider from the compiled-code cache (new engine included, and not);
//!   the registry loads built-ins when first asked for, so these rows ask for all of them.
//!
//! Numbers, not assertions: the machine is shared and noisy, so compare runs side by side.

use std::hint::black_box;
use std::time::{Duration, Instant};

use latchkey::plugins::{Limits, Registry, Runtime};
use latchkey_provider_sdk::{Config, Provider as _};

struct Stats {
    median: Duration,
    p99: Duration,
    runs: usize,
}

/// Time `batch` calls of `op` at a time, `samples` times, after a warm-up.
fn measure(samples: usize, batch: usize, mut op: impl FnMut()) -> Stats {
    for _ in 0..batch.min(100) {
        op();
    }
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                op();
            }
            start.elapsed() / batch as u32
        })
        .collect();
    times.sort();
    Stats { median: times[times.len() / 2], p99: times[(times.len() * 99) / 100], runs: samples * batch }
}

fn report(name: &str, stats: &Stats) {
    println!("{name:<58} median {:>10.2?}  p99 {:>10.2?}  ({} runs)", stats.median, stats.p99, stats.runs);
}

fn main() {
    let cache = tempfile::tempdir().expect("temp dir");
    let cache_dir = cache.path().join("compiled");
    let runtime = Runtime::new(Some(cache_dir.clone()), Limits::default()).expect("runtime");
    // Built-ins load on first use: `get` compiles Google and counting `providers()` compiles the
    // rest, filling the cache; everything timed runs warm.
    let registry = Registry::load(&runtime, None);
    let google = registry.get("google").expect("built-in google");
    let scopes = vec!["openid".to_string(), "https://www.googleapis.com/auth/gmail.readonly".to_string()];
    let config = google.resolve_config(&[]).expect("config");

    println!("latchkey provider runtime ({} built-ins)", registry.providers().count());
    report(
        "hook call, fresh store (google authorize-params)",
        &measure(200, 200, || {
            black_box(google.authorize_params(black_box(&scopes), black_box(&config)).unwrap());
        }),
    );
    let flow = google.configure(&config).unwrap();
    report(
        "hook call, fresh store (google configure)",
        &measure(200, 200, || {
            black_box(google.configure(black_box(&config)).unwrap());
        }),
    );
    let native_config = Config::new(config.clone());
    report(
        "same hook as native Rust (google authorize_params)",
        &measure(200, 2000, || {
            black_box(latchkey_provider_google::Google::authorize_params(black_box(&scopes), black_box(&native_config)).unwrap());
        }),
    );
    black_box(flow);

    report(
        "load all built-ins from the compiled cache (registry)",
        &measure(30, 3, || {
            black_box(Registry::load(&runtime, None).providers().count());
        }),
    );
    report(
        "load all built-ins from the compiled cache (engine + registry)",
        &measure(30, 1, || {
            let runtime = Runtime::new(Some(cache_dir.clone()), Limits::default()).unwrap();
            black_box(Registry::load(&runtime, None).providers().count());
        }),
    );
}
