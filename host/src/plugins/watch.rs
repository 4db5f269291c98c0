//! Hot reload of drop-in providers: a long-running process (the gateway) picks up a new, changed
//! or removed `*.wasm` in the providers folder without a restart.
//!
//! - [`LiveRegistry`] holds the current [`Registry`] and swaps it whole, so a reader takes one
//!   consistent snapshot with [`LiveRegistry::current`] and never sees a half-reloaded set. A
//!   request that is under way keeps the snapshot (and the provider) it started with.
//! - [`LiveRegistry::watch`] starts one thread that receives the folder's change events (the
//!   `notify` crate), waits until they have been quiet for [`DEBOUNCE`] (a copy or a build writes
//!   a file in several steps), then reloads. One thread does every reload, so reloads never race;
//!   Zed's extension host works the same way.
//! - A file that fails to load never replaces a working provider: [`Registry::reloaded`] keeps the
//!   previous version, and the failure is logged as a warning.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use anyhow::Context;
use notify::{EventKind, RecursiveMode, Watcher as _};

use super::error::Origin;
use super::provider::Provider;
use super::registry::{DROPIN_EXTENSION, Registry};
use super::runtime::Runtime;

/// How long the folder must be quiet before a reload.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// The registry of a long-running process, reloaded when the drop-in folder changes.
pub struct LiveRegistry {
    runtime: Arc<Runtime>,
    dropin_dir: PathBuf,
    current: RwLock<Arc<Registry>>,
}

/// Keeps the folder watched; dropping it stops the watching thread.
pub struct Watcher {
    _watcher: notify::RecommendedWatcher,
}

impl LiveRegistry {
    pub fn new(runtime: Arc<Runtime>, registry: Registry, dropin_dir: PathBuf) -> LiveRegistry {
        LiveRegistry { runtime, dropin_dir, current: RwLock::new(Arc::new(registry)) }
    }

    /// The registry as it is now.
    pub fn current(&self) -> Arc<Registry> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Load the drop-in folder again and swap the result in, logging what changed.
    pub fn reload(&self) -> Arc<Registry> {
        let before = self.current();
        let after = Arc::new(before.reloaded(&self.runtime, &self.dropin_dir));
        log_changes(&before, &after);
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = after.clone();
        after
    }

    /// Watch the drop-in folder (created if missing) and reload after each burst of changes.
    pub fn watch(self: &Arc<Self>) -> anyhow::Result<Watcher> {
        crate::paths::create_private_dir(&self.dropin_dir)?;
        let (sender, events) = mpsc::channel();
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = sender.send(event);
        })
        .context("cannot watch the providers folder for changes")?;
        watcher
            .watch(&self.dropin_dir, RecursiveMode::NonRecursive)
            .with_context(|| format!("cannot watch {} for changes", self.dropin_dir.display()))?;
        let live = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("latchkey-providers-watch".into())
            .spawn(move || reload_on_changes(&live, &events))
            .context("cannot start the thread that reloads providers")?;
        tracing::info!("watching {} for provider changes", self.dropin_dir.display());
        Ok(Watcher { _watcher: watcher })
    }
}

/// The watching thread: ends when the [`Watcher`] (and with it the event sender) or the
/// [`LiveRegistry`] is dropped.
fn reload_on_changes(live: &Weak<LiveRegistry>, events: &mpsc::Receiver<notify::Result<notify::Event>>) {
    while let Ok(event) = events.recv() {
        if !affects_providers(&event) {
            continue;
        }
        loop {
            match events.recv_timeout(DEBOUNCE) {
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        let Some(live) = live.upgrade() else { return };
        live.reload();
    }
}

/// Whether `event` may change what the registry loads: a write, creation, rename or removal of a
/// visible `*.wasm` file. Reads are ignored, or every reload (which reads the files) would start
/// another; hidden files are ignored as the registry ignores them.
fn affects_providers(event: &notify::Result<notify::Event>) -> bool {
    let event = match event {
        Ok(event) => event,
        Err(error) => {
            // The events may have been lost (a queue overflow): reloading is the safe answer.
            tracing::warn!("watching the providers folder: {error}");
            return true;
        }
    };
    let writes = match event.kind {
        EventKind::Access(notify::event::AccessKind::Close(notify::event::AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    };
    writes && event.paths.iter().any(|path| crate::paths::is_visible_file_named(path, &[DROPIN_EXTENSION]))
}

/// What the reload changed, among the providers loaded so far (a built-in that nothing has used
/// yet is not loaded just to say that it is still there).
fn log_changes(before: &Registry, after: &Registry) {
    for provider in after.loaded() {
        let previous = before.loaded().find(|previous| previous.id() == provider.id());
        if previous.is_none_or(|previous| previous.sha256() != provider.sha256()) {
            tracing::info!("provider `{}` {} loaded from {}", provider.id(), provider.info().version, provider.origin());
        }
    }
    let gone =
        |provider: &&Provider| matches!(provider.origin(), Origin::File(_)) && !after.loaded().any(|now| now.origin() == provider.origin());
    for provider in before.loaded().filter(gone) {
        // Another loaded provider with the id was logged above; otherwise the id is either gone
        // or back to its built-in, which loads when next used.
        if after.loaded().any(|now| now.id() == provider.id()) {
            continue;
        }
        if after.contains(provider.id()) {
            tracing::info!("provider `{}`: {} is gone; the built-in is used again", provider.id(), provider.origin());
        } else {
            tracing::info!("provider `{}` removed ({} is gone)", provider.id(), provider.origin());
        }
    }
    for failure in after.failures() {
        tracing::warn!("provider not loaded: {failure}");
    }
    for notice in after.notices().iter().filter(|notice| !before.notices().contains(notice)) {
        tracing::warn!("{notice}");
    }
}
