//! What the benchmark reads about a process from `/proc`: CPU time (`stat`: utime + stime, all
//! threads), peak and current resident memory (`status`: VmHWM, VmRSS), and its descendants (the
//! upstream server a proxy started, perhaps through a shell).

use std::fs;

use anyhow::{Context, Result, anyhow};

/// Clock ticks per second of the `stat` times: `getconf CLK_TCK`, 100 on Linux everywhere this
/// runs; asked once so an odd kernel is still measured right.
pub fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU ticks of `pid` (every thread, not its children).
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("process {pid} is gone"))?;
    let fields = fields_after_name(&stat).ok_or_else(|| anyhow!("/proc/{pid}/stat has an unexpected format"))?;
    // Fields 14 and 15 of stat(5); the name is field 2 and `fields` starts at field 3.
    let utime: u64 = fields.get(11).and_then(|field| field.parse().ok()).context("utime")?;
    let stime: u64 = fields.get(12).and_then(|field| field.parse().ok()).context("stime")?;
    Ok(utime + stime)
}

/// How long ago `pid` started (`stat`'s start time against `/proc/uptime`), to 1/`CLK_TCK` s.
pub fn age(pid: u32) -> Result<std::time::Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("process {pid} is gone"))?;
    let fields = fields_after_name(&stat).ok_or_else(|| anyhow!("/proc/{pid}/stat has an unexpected format"))?;
    // Field 22 of stat(5).
    let started: f64 = fields.get(19).and_then(|field| field.parse().ok()).context("starttime")?;
    let uptime = fs::read_to_string("/proc/uptime")?;
    let uptime: f64 = uptime.split_whitespace().next().and_then(|field| field.parse().ok()).context("/proc/uptime")?;
    Ok(std::time::Duration::from_secs_f64((uptime - started / ticks_per_second()).max(0.0)))
}

/// A `Vm*` line of `/proc/<pid>/status`, in KiB.
pub fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("process {pid} is gone"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("/proc/{pid}/status has no {key}"))
}

/// Every living descendant of `pid`.
pub fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|child| {
            let stat = fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            let parent = fields_after_name(&stat)?.get(1)?.parse().ok()?;
            Some((child, parent))
        })
        .collect();
    let mut found = vec![pid];
    let mut at = 0;
    while at < found.len() {
        let parent = found[at];
        found.extend(parents.iter().filter(|(_, p)| *p == parent).map(|(child, _)| *child));
        at += 1;
    }
    found.remove(0);
    found
}

/// The fields of a `stat` line after `(name)`; the name may hold spaces and parentheses.
fn fields_after_name(stat: &str) -> Option<Vec<&str>> {
    let end = stat.rfind(')')?;
    Some(stat[end + 1..].split_whitespace().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        // Burn a little CPU so the counter has something to show.
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(cpu_ticks(me).unwrap() > 0);
        let current = status_kib(me, "VmRSS").unwrap();
        assert!(current > 0);
        assert!(status_kib(me, "VmHWM").unwrap() >= current);
        assert!(age(me).unwrap() < std::time::Duration::from_secs(3600));
    }

    #[test]
    fn finds_children() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let found = descendants(std::process::id());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(found.contains(&child.id()), "{found:?}");
    }

    #[test]
    fn names_with_parentheses() {
        let fields = fields_after_name("12 (a (b) c) S 1 2").unwrap();
        assert_eq!(fields, vec!["S", "1", "2"]);
    }
}
