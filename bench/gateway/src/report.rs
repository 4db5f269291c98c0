//! Pooling batches and printing the table: absolute numbers, and for every row after the first its
//! ratio to the first (`2.10 (3.0×)`), so side-by-side comparisons survive a noisy machine.

use std::fmt::Write;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::Target;

/// One batch of calls against one target.
pub struct Batch {
    latencies: Vec<Duration>,
    wall: Duration,
    own_ticks: u64,
    child_ticks: u64,
}

impl Batch {
    /// `before` and `after` are (process, descendants) CPU ticks.
    pub fn new(latencies: Vec<Duration>, wall: Duration, before: (u64, u64), after: (u64, u64)) -> Result<Batch> {
        if after.0 < before.0 {
            bail!("the CPU time of the measured process went down: was it restarted?");
        }
        // Descendants can only be summed while they live; a restart would make this go down.
        Ok(Batch { latencies, wall, own_ticks: after.0 - before.0, child_ticks: after.1.saturating_sub(before.1) })
    }
}

/// Every batch of one kind (sequential or concurrent) against one target.
#[derive(Default)]
pub struct Pooled {
    latencies: Vec<Duration>,
    wall: Duration,
    own_ticks: u64,
    child_ticks: u64,
}

impl Pooled {
    pub fn add(&mut self, batch: Batch) {
        self.latencies.extend(batch.latencies);
        self.wall += batch.wall;
        self.own_ticks += batch.own_ticks;
        self.child_ticks += batch.child_ticks;
    }

    fn calls(&self) -> usize {
        self.latencies.len()
    }

    fn throughput(&self) -> f64 {
        self.calls() as f64 / self.wall.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        percentile_ms(&self.latencies, p)
    }
}

#[derive(Default)]
pub struct Measured {
    pub sequential: Pooled,
    pub concurrent: Pooled,
    pub peak_kib: u64,
    pub rss_kib: u64,
}

impl Measured {
    fn calls(&self) -> usize {
        self.sequential.calls() + self.concurrent.calls()
    }

    /// Microseconds of CPU per call: the process's own, and its descendants'.
    fn cpu_us(&self, ticks_per_second: f64) -> (f64, f64) {
        let per_call = |ticks: u64| ticks as f64 / ticks_per_second * 1e6 / self.calls() as f64;
        (
            per_call(self.sequential.own_ticks + self.concurrent.own_ticks),
            per_call(self.sequential.child_ticks + self.concurrent.child_ticks),
        )
    }
}

/// The `p`-quantile (nearest rank) of `latencies`, in milliseconds.
pub fn percentile_ms(latencies: &[Duration], p: f64) -> f64 {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

/// The table, in Markdown.
pub fn render(targets: &[Target], measured: &[Measured], concurrency: usize, ticks_per_second: f64) -> String {
    let reference = &measured[0];
    let (reference_cpu, _) = reference.cpu_us(ticks_per_second);
    // Against a server measured directly, a proxy's CPU and memory have nothing to compare with.
    let reference_is_proxy = !targets[0].direct;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| target | seq p50 ms | seq p99 ms | seq calls/s | c={concurrency} p50 ms | c={concurrency} p99 ms | c={concurrency} calls/s | proxy CPU µs/call | upstream CPU µs/call | proxy peak RSS MB |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (index, (target, m)) in targets.iter().zip(measured).enumerate() {
        let first = index == 0;
        let cell = |value: f64, reference: f64, decimals: usize| {
            if first || reference == 0.0 {
                format!("{value:.decimals$}")
            } else {
                format!("{value:.decimals$} ({:.1}×)", value / reference)
            }
        };
        let (cpu, upstream_cpu) = m.cpu_us(ticks_per_second);
        let peak_mb = m.peak_kib as f64 / 1024.0;
        let (proxy_cpu, upstream_cpu, peak) = if target.direct {
            // The process is the server: its CPU is the upstream's, and there is no proxy.
            ("—".to_string(), format!("{cpu:.0}"), format!("— (server {peak_mb:.0})"))
        } else {
            let reference_or_none = |value: f64| if reference_is_proxy { value } else { 0.0 };
            (
                cell(cpu, reference_or_none(reference_cpu), 0),
                format!("{upstream_cpu:.0}"),
                cell(peak_mb, reference_or_none(reference.peak_kib as f64 / 1024.0), 1),
            )
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            target.name,
            cell(m.sequential.percentile_ms(0.5), reference.sequential.percentile_ms(0.5), 2),
            cell(m.sequential.percentile_ms(0.99), reference.sequential.percentile_ms(0.99), 2),
            cell(m.sequential.throughput(), reference.sequential.throughput(), 0),
            cell(m.concurrent.percentile_ms(0.5), reference.concurrent.percentile_ms(0.5), 2),
            cell(m.concurrent.percentile_ms(0.99), reference.concurrent.percentile_ms(0.99), 2),
            cell(m.concurrent.throughput(), reference.concurrent.throughput(), 0),
            proxy_cpu,
            upstream_cpu,
            peak,
        );
    }
    let _ = writeln!(
        out,
        "\n{} sequential and {} concurrent calls per target; CPU from /proc/<pid>/stat ({} ticks/s), peak RSS = VmHWM; current RSS MB: {}.",
        reference.sequential.calls(),
        reference.concurrent.calls(),
        ticks_per_second,
        targets.iter().zip(measured).map(|(t, m)| format!("{} {:.1}", t.name, m.rss_kib as f64 / 1024.0)).collect::<Vec<_>>().join(", "),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pooled(millis: &[u64]) -> Pooled {
        let mut pooled = Pooled::default();
        let latencies: Vec<Duration> = millis.iter().map(|&ms| Duration::from_millis(ms)).collect();
        pooled.add(Batch::new(latencies, Duration::from_secs(2), (10, 0), (30, 5)).unwrap());
        pooled
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let pooled = pooled(&(1..=100).rev().collect::<Vec<_>>());
        assert_eq!(pooled.percentile_ms(0.5), 50.0);
        assert_eq!(pooled.percentile_ms(0.99), 99.0);
        assert_eq!(pooled.percentile_ms(1.0), 100.0);
        assert_eq!(pooled.throughput(), 50.0);
    }

    #[test]
    fn cpu_is_per_call() {
        let measured = Measured { sequential: pooled(&[1; 100]), concurrent: pooled(&[1; 100]), ..Measured::default() };
        // 2 × 20 ticks at 100 ticks/s = 0.4 s over 200 calls.
        let (own, children) = measured.cpu_us(100.0);
        assert!((own - 2000.0).abs() < 1e-6, "{own}");
        assert!((children - 500.0).abs() < 1e-6, "{children}");
    }

    #[test]
    fn restarted_processes_are_refused() {
        assert!(Batch::new(Vec::new(), Duration::ZERO, (10, 0), (5, 0)).is_err());
    }
}
