//! The gateway's heap, kept to what it uses now, on Linux with glibc (elsewhere this does nothing).
//!
//! glibc's malloc gives threads arenas of their own (up to eight per core) and keeps what is freed
//! in them for later. A gateway runs for weeks and its peaks pass: a burst of sessions that end,
//! the start of thousands of upstreams, or token refreshes that each rewrite a file store of
//! thousands of credentials from a blocking thread. Without a limit, each thread's arena held its
//! own copy of such a peak (10 000 credentials: 435 MB resident after a few minutes of
//! refreshes). So the gateway uses two arenas ([`limit_arenas`]), and hands free pages back
//! ([`Freed`]) after memory was freed in bulk.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often freed memory is handed back, at most.
const RELEASE_INTERVAL: Duration = Duration::from_secs(10);

/// Keep the heap in two arenas: the gateway's one worker thread and its blocking threads share
/// them rather than each keeping its own. And keep large blocks out of them: glibc maps a block
/// above its threshold on its own and unmaps it when freed, but raises the threshold to the size
/// of each such block freed, after which the next ones (a file store of 10 000 credentials
/// encoded at each refresh, ~6 MB; a `/health` of as many servers) come from the arenas and leave
/// them fragmented. A fixed threshold keeps it where it is. Call before the runtime starts its
/// threads.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets tunables of glibc's allocator; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// glibc's initial threshold (128 KiB) doubled: the hot path's buffers stay below it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 256 << 10;

/// Marks that memory was freed in bulk; within [`RELEASE_INTERVAL`] its free pages go back to the
/// system. Cheap to clone; the task that releases ends after the last clone, honouring a note
/// the last clone made.
#[derive(Clone)]
pub struct Freed {
    freed: Arc<AtomicBool>,
}

impl Freed {
    /// Must be called within a tokio runtime.
    pub fn watch() -> Freed {
        let freed = Arc::new(AtomicBool::new(false));
        let watched = freed.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RELEASE_INTERVAL).await;
                if watched.swap(false, Ordering::Relaxed) {
                    let _ = tokio::task::spawn_blocking(release_freed_memory).await;
                }
                if Arc::strong_count(&watched) == 1 {
                    return;
                }
            }
        });
        Freed { freed }
    }

    pub fn note(&self) {
        self.freed.store(true, Ordering::Relaxed);
    }
}

/// Hand the free pages of the heap back to the system. glibc's malloc keeps what a burst freed
/// (bench/gateway's churn scenario: ~45 MB after 500 abandoned sessions expired, never
/// returned); `malloc_trim` returns every whole free page.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only takes glibc's own arena locks and returns free pages; it touches no
    // memory that is in use.
    unsafe {
        libc::malloc_trim(0);
    }
}
