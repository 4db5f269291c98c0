//! The drop-ins the user allowed to replace a built-in provider.
//!
//! A file in the providers folder with a built-in's id would otherwise take over that id for every
//! catalog entry that names it, with its own endpoints and its own `prepare-request`: one copied
//! file would receive the client secrets and tokens meant for Google. So a drop-in replaces a
//! built-in only when `latchkey provider install --replace <file>` recorded the file's sha256 for
//! the id here (`replacements.json` in the providers folder, `{"<id>": "<sha256>"}`); a file with
//! another hash is not loaded, and `provider ls` says how to allow it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The record's file name in the providers folder (not a `*.wasm`, so never loaded as a drop-in).
pub const FILE_NAME: &str = "replacements.json";

/// The allowed replacements: built-in id → sha256 of the allowed component.
#[derive(Clone, Debug, Default)]
pub struct Replacements {
    allowed: BTreeMap<String, String>,
}

impl Replacements {
    pub fn path(dropin_dir: &Path) -> PathBuf {
        dropin_dir.join(FILE_NAME)
    }

    /// The record in `dropin_dir`: none when the file is missing; an unreadable or damaged record
    /// allows nothing (the built-ins stay), and says why.
    pub fn load(dropin_dir: &Path) -> Result<Replacements, String> {
        let path = Replacements::path(dropin_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Replacements::default()),
            Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
        };
        serde_json::from_str(&text).map(|allowed| Replacements { allowed }).map_err(|error| {
            format!(
                "{} is damaged ({error}), so no drop-in replaces a built-in; `latchkey provider install --replace <file>` writes it again",
                path.display()
            )
        })
    }

    /// Whether the component with `sha256` may replace the built-in `id`.
    pub fn allows(&self, id: &str, sha256: &str) -> bool {
        self.allowed.get(id).is_some_and(|allowed| allowed.eq_ignore_ascii_case(sha256))
    }

    /// Allow the component with `sha256` to replace the built-in `id`, and write the record.
    pub fn allow(dropin_dir: &Path, id: &str, sha256: &str) -> anyhow::Result<()> {
        Replacements::update(dropin_dir, |allowed| {
            allowed.insert(id.to_string(), sha256.to_string());
        })
    }

    /// Forget the replacement of `id`, if any (the drop-in was removed).
    pub fn forget(dropin_dir: &Path, id: &str) -> anyhow::Result<()> {
        Replacements::update(dropin_dir, |allowed| {
            allowed.remove(id);
        })
    }

    fn update(dropin_dir: &Path, change: impl FnOnce(&mut BTreeMap<String, String>)) -> anyhow::Result<()> {
        // A damaged record is replaced: it allowed nothing anyway.
        let mut allowed = Replacements::load(dropin_dir).unwrap_or_default().allowed;
        change(&mut allowed);
        let path = Replacements::path(dropin_dir);
        if allowed.is_empty() {
            // Nothing allowed: no file, so the folder holds only what the user put there.
            return match std::fs::remove_file(&path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    Err(error).with_context(|| format!("cannot remove {}", path.display()))
                }
                _ => Ok(()),
            };
        }
        let json = serde_json::to_vec_pretty(&allowed).context("serializing the replacements")?;
        crate::paths::write_private_atomically(&path, &json)
    }
}
