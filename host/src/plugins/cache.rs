//! Compiled provider code, kept between runs so that loading a provider costs a file map instead of
//! a compilation (about 1 ms instead of 150 ms).
//!
//! Deserializing compiled code means trusting it as native code, so the cache only ever reads files
//! that this host wrote: they live in a folder only the user can access, and each file's name is
//! the SHA-256 of the component's bytes plus the engine's compatibility hash (which covers the
//! wasmtime version and every setting that affects code generation). A file that is not there, or
//! that the engine refuses, is simply compiled again.

use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

pub(crate) struct CompiledCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompiledCache {
    pub(crate) fn open(dir: PathBuf, engine: &Engine) -> anyhow::Result<CompiledCache> {
        crate::paths::create_private_dir(&dir)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(CompiledCache { dir, engine_key: format!("{:016x}", hasher.finish()) })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    pub(crate) fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(sha256);
        if !is_private_file(&path) {
            return None;
        }
        // SAFETY: the file is in our private folder and named by the hash of the wasm it was
        // compiled from and the engine configuration; only `store` below writes such files.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::debug!("ignoring cached code {}: {error:#}", path.display());
                None
            }
        }
    }

    pub(crate) fn store(&self, sha256: &str, component: &Component) -> anyhow::Result<()> {
        let bytes = component.serialize().map_err(|e| anyhow::anyhow!("{e:#}"))?;
        crate::paths::write_private_atomically(&self.path(sha256), &bytes)
    }
}

/// A regular file (not a link) owned by whoever owns the cache folder, writable by nobody else.
#[cfg(unix)]
fn is_private_file(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let owner = path.parent().and_then(|dir| fs::metadata(dir).ok()).map(|meta| meta.uid());
    match (fs::symlink_metadata(path), owner) {
        (Ok(meta), Some(owner)) => meta.is_file() && meta.uid() == owner && meta.mode() & 0o022 == 0,
        _ => false,
    }
}

#[cfg(not(unix))]
fn is_private_file(path: &Path) -> bool {
    fs::symlink_metadata(path).map(|meta| meta.is_file()).unwrap_or(false)
}
