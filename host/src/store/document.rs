//! A private JSON file of entries by key, shared by concurrent processes: the file store's data,
//! the keyring store's names-only index and the stored configuration values.
//!
//! Readers need no lock: every write replaces the whole file atomically (a private temporary file,
//! fsync, rename, folder fsync), so a reader sees the old or the new file, never a mix. Writers
//! take an exclusive lock on a separate lock file (the data file itself is replaced, so a lock on
//! it would be lost), read, change and write back while holding it, so no writer loses another's
//! entries.
//!
//! A document keeps an index of the file, not its values: each entry's key and where its value
//! is, with the file's stamp (its identity, size and times). A read of one entry opens the file,
//! checks that it is the file the index was made from, and reads and decodes that entry's bytes
//! alone. A gateway's refresh scheduler reads its thousands of credentials one at a time: parsing
//! the whole file for each read was seconds of CPU per pass, and keeping every value parsed held
//! every token in memory for the life of the gateway (10 000 credentials: ~7.5 MB of small
//! allocations, more with real tokens, which can be kilobytes each).
//!
//! A change works from the index too: the new file is the old one's entries copied as they are,
//! with the entries the change sets encoded in their place, one entry a line, and the index is
//! made from the positions written. Only a file another process wrote since is parsed, to index it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{BufReader, ErrorKind, Read, Write};
use std::marker::PhantomData;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::Context;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use super::lock::{self, FileLock};
use crate::paths;

/// The layout version this latchkey writes and reads.
const VERSION: u32 = 1;

pub(crate) type Entries<V> = BTreeMap<String, V>;

#[derive(Deserialize)]
struct LayoutIn<T> {
    entries: Entries<T>,
}

/// The layout with each value as its JSON text, borrowed from the file's bytes.
#[derive(Deserialize)]
struct LayoutText<'a> {
    #[serde(borrow)]
    entries: Positions<'a>,
}

/// The entries in the order the file has them.
struct Positions<'a>(Vec<(Key<'a>, &'a RawValue)>);

/// An entry's key, borrowed from the file's bytes unless it has escapes.
#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

pub(crate) struct Document<V> {
    path: PathBuf,
    lock_path: PathBuf,
    /// Where each entry's value is in the file as last read or written.
    index: Mutex<Option<Index>>,
    /// How many times the whole file was parsed to index it: the tests check that this process's
    /// own writes leave the index current.
    #[cfg(test)]
    indexings: std::sync::atomic::AtomicUsize,
    values: PhantomData<fn() -> V>,
}

/// The file's stamp, and where each entry's value is in it, by key in key order.
struct Index {
    stamp: Stamp,
    spans: Spans,
}

type Spans = Vec<(Box<str>, Span)>;

/// Where a value's JSON text is in the file.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    len: usize,
}

impl Span {
    fn range(self) -> Range<usize> {
        self.start..self.start + self.len
    }
}

/// What tells one version of a file from another: a replaced file is a new file (identity and
/// change time), and a rewritten one has a new size or modification time.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    identity: (u64, u64, i64, i64),
}

impl Stamp {
    fn of(metadata: &fs::Metadata) -> Stamp {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Stamp {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            #[cfg(unix)]
            identity: (metadata.dev(), metadata.ino(), metadata.ctime(), metadata.ctime_nsec()),
        }
    }
}

/// The writer's lock on a [`Document`].
pub(crate) struct Locked<'a, V> {
    document: &'a Document<V>,
    _lock: FileLock,
}

/// What a change does to the entries: those it does not set stay as the file has them.
pub(crate) struct Edits<'a, V> {
    stored: &'a [(Box<str>, Span)],
    /// The new value of each key set, or `None` to remove it.
    changes: BTreeMap<String, Option<V>>,
}

impl<V: Serialize + DeserializeOwned> Document<V> {
    /// The document at `path`, locked through `<locks_dir>/<file name>.lock`.
    pub(crate) fn new(path: PathBuf, locks_dir: &Path) -> Document<V> {
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        Document {
            lock_path: lock::lock_path(locks_dir, &name),
            path,
            index: Mutex::new(None),
            #[cfg(test)]
            indexings: Default::default(),
            values: PhantomData,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The entry `key`, as last written: its bytes alone are read when the index is current.
    pub(crate) fn get(&self, key: &str) -> anyhow::Result<Option<V>> {
        // Under the lock: a stale index is made again once, by the first reader, and a write by
        // this process (which holds it) is not read half-way.
        let mut index = self.index.lock().expect("document index lock");
        let Some((file, stamp)) = self.open()? else {
            *index = None;
            return Ok(None);
        };
        let mut source = match index.as_ref() {
            Some(kept) if kept.stamp == stamp => Source::File { reader: BufReader::new(file), at: 0 },
            _ => {
                let bytes = self.read_all(file)?;
                let previous = index.take();
                *index = Some(self.index_of(&bytes, stamp, previous)?);
                Source::Bytes(bytes)
            }
        };
        let Some(span) = index.as_ref().and_then(|kept| find(&kept.spans, key)) else { return Ok(None) };
        let mut text = Vec::new();
        self.decode(key, self.text(&mut source, span, &mut text)?).map(Some)
    }

    /// Every entry, as `T`: `V`, or a part of it (the file store lists names without reading a
    /// value). Reads the whole file.
    pub(crate) fn entries_as<T: DeserializeOwned>(&self) -> anyhow::Result<Entries<T>> {
        let Some((file, _)) = self.open()? else { return Ok(Entries::new()) };
        let bytes = self.read_all(file)?;
        self.check_version(&bytes)?;
        let layout: LayoutIn<T> = serde_json::from_slice(&bytes).map_err(|error| self.damaged(&error))?;
        Ok(layout.entries)
    }

    /// Take the writer's lock (waiting for other writers), for read-change-write.
    pub(crate) fn lock(&self) -> anyhow::Result<Locked<'_, V>> {
        Ok(Locked { _lock: FileLock::acquire(&self.lock_path)?, document: self })
    }

    /// The file, open, and its stamp; `None` when there is no file. A file that others can read
    /// is refused rather than used: its secrets may already be out.
    fn open(&self) -> anyhow::Result<Option<(File, Stamp)>> {
        let cannot_read = || format!("cannot read {}", self.path.display());
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error).with_context(cannot_read),
        };
        let metadata = file.metadata().with_context(cannot_read)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode();
            if mode & 0o077 != 0 {
                anyhow::bail!(
                    "{} can be read by other users (mode {:04o}); make it private with `chmod 600 {}`, and consider \
                     the secrets in it exposed",
                    self.path.display(),
                    mode & 0o7777,
                    self.path.display()
                );
            }
        }
        Ok(Some((file, Stamp::of(&metadata))))
    }

    fn read_all(&self, mut file: File) -> anyhow::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).with_context(|| format!("cannot read {}", self.path.display()))?;
        Ok(bytes)
    }

    /// The index of the file's `bytes`, stamped `stamp`, reusing the keys of `previous` that are
    /// still there.
    fn index_of(&self, bytes: &[u8], stamp: Stamp, previous: Option<Index>) -> anyhow::Result<Index> {
        #[cfg(test)]
        self.indexings.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.check_version(bytes)?;
        let layout: LayoutText<'_> = serde_json::from_slice(bytes).map_err(|error| self.damaged(&error))?;
        let mut entries = layout.entries.0;
        // Sorted by key; of a key the file has twice (edited by hand), the last, as a map would.
        entries.reverse();
        entries.sort_by(|(a, _), (b, _)| a.0.cmp(&b.0));
        entries.dedup_by(|(later, _), (earlier, _)| later.0 == earlier.0);
        let base = bytes.as_ptr() as usize;
        let spans = entries.iter().map(|(key, text)| (&*key.0, Span { start: text.get().as_ptr() as usize - base, len: text.get().len() }));
        Ok(Index { stamp, spans: keyed(previous, entries.len(), spans) })
    }

    /// The text of the value at `span`, from `source` (through `buffer` when it is the file).
    fn text<'a>(&self, source: &'a mut Source, span: Span, buffer: &'a mut Vec<u8>) -> anyhow::Result<&'a [u8]> {
        let changed = || format!("{} changed while it was read; try again", self.path.display());
        match source {
            Source::Bytes(bytes) => bytes.get(span.range()).with_context(changed),
            Source::File { reader, at } => {
                buffer.resize(span.len, 0);
                // Forward within what was read ahead, as a change's copy of every entry goes.
                let skip = i64::try_from(span.start as i128 - *at as i128).with_context(changed)?;
                reader.seek_relative(skip).and_then(|()| reader.read_exact(buffer)).with_context(changed)?;
                *at = span.start + span.len;
                Ok(buffer)
            }
        }
    }

    fn check_version(&self, bytes: &[u8]) -> anyhow::Result<()> {
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let version: Version = serde_json::from_slice(bytes).map_err(|error| self.damaged(&error))?;
        if version.version != VERSION {
            anyhow::bail!(
                "{} has layout version {}, and this latchkey reads version {VERSION}; use the latchkey that wrote it",
                self.path.display(),
                version.version
            );
        }
        Ok(())
    }

    /// The value of entry `key`, from its text.
    fn decode<T: DeserializeOwned>(&self, key: &str, text: &[u8]) -> anyhow::Result<T> {
        // serde_json's messages can quote a value, which may be a secret: report the position only.
        serde_json::from_slice(text).map_err(|error| {
            anyhow::anyhow!(
                "{} is damaged (its entry `{key}` is invalid at line {}, column {} of the entry); restore it from a backup or \
                 move it away",
                self.path.display(),
                error.line(),
                error.column()
            )
        })
    }

    fn damaged(&self, error: &serde_json::Error) -> anyhow::Error {
        // serde_json's messages can quote a value, which may be a secret: report the position only.
        anyhow::anyhow!(
            "{} is damaged (invalid at line {}, column {}); restore it from a backup or move it away",
            self.path.display(),
            error.line(),
            error.column()
        )
    }

    /// Write to `out` the file with the entries of `stored` (their text in `old`) as `changes`
    /// leave them, one a line; the new file's spans.
    fn encode(&self, mut old: Source, stored: Spans, changes: BTreeMap<String, Option<V>>, out: &mut dyn Write) -> anyhow::Result<Spans> {
        let bytes = &mut Counted { out, written: 0 };
        write!(bytes, "{{\n  \"version\": {VERSION},\n  \"entries\": {{")?;
        let mut spans = Spans::with_capacity(stored.len() + changes.len());
        let mut buffer = Vec::new();
        let (mut stored, mut changes) = (stored.into_iter().peekable(), changes.into_iter().peekable());
        loop {
            let changed_first = match (stored.peek(), changes.peek()) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((kept, _)), Some((changed, _))) => changed.as_str() <= &**kept,
            };
            let (key, value) = if changed_first {
                let Some((key, change)) = changes.next() else { break };
                let kept = stored.next_if(|(kept, _)| **kept == *key).map(|(kept, _)| kept);
                let Some(value) = change else { continue };
                (kept.unwrap_or_else(|| key.into_boxed_str()), Text::New(value))
            } else {
                let Some((key, span)) = stored.next() else { break };
                (key, Text::Stored(self.text(&mut old, span, &mut buffer)?))
            };
            bytes.write_all(if spans.is_empty() { b"\n    " } else { b",\n    " })?;
            serde_json::to_writer(&mut *bytes, &*key)?;
            bytes.write_all(b": ")?;
            let start = bytes.written;
            match value {
                // Written by an earlier latchkey, over several lines: put on one.
                Text::Stored(text) if text.contains(&b'\n') => {
                    serde_json::to_writer(&mut *bytes, &self.decode::<V>(&key, text)?).context("cannot encode the store")?
                }
                Text::Stored(text) => bytes.write_all(text)?,
                Text::New(value) => serde_json::to_writer(&mut *bytes, &value).context("cannot encode the store")?,
            }
            spans.push((key, Span { start, len: bytes.written - start }));
        }
        bytes.write_all(if spans.is_empty() { b"}\n}\n" } else { b"\n  }\n}\n" })?;
        Ok(spans)
    }
}

/// Where a change's unchanged entries are copied from: the old file, read in order, or its bytes
/// when they were read whole to index them.
enum Source {
    File { reader: BufReader<File>, at: usize },
    Bytes(Vec<u8>),
}

/// A writer that counts what went through it: where each value starts in the new file.
struct Counted<'a> {
    out: &'a mut dyn Write,
    written: usize,
}

impl Write for Counted<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.out.write(bytes)?;
        self.written += written;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// A value as [`Document::encode`] writes it.
enum Text<'a, V> {
    Stored(&'a [u8]),
    New(V),
}

impl<V: Serialize + DeserializeOwned> Locked<'_, V> {
    /// Edit the entries with `change`, which says whether it changed them, and if it did,
    /// replace the file, atomically (see the module comment).
    pub(crate) fn change(&self, change: impl FnOnce(&mut Edits<'_, V>) -> bool) -> anyhow::Result<bool> {
        let document = self.document;
        // Held through the write: this process's readers wait for the new file and its index
        // rather than read the old one as it is replaced (on Windows, a reader's handle on the
        // file holds up the rename).
        let mut index = document.index.lock().expect("document index lock");
        let (stamp, stored, old) = match (index.take(), document.open()?) {
            (Some(kept), Some((file, stamp))) if kept.stamp == stamp => {
                (Some(stamp), kept.spans, Source::File { reader: BufReader::new(file), at: 0 })
            }
            (previous, Some((file, stamp))) => {
                let bytes = document.read_all(file)?;
                (Some(stamp.clone()), document.index_of(&bytes, stamp, previous)?.spans, Source::Bytes(bytes))
            }
            (_, None) => (None, Spans::new(), Source::Bytes(Vec::new())),
        };
        let mut edits = Edits { stored: &stored, changes: BTreeMap::new() };
        if !change(&mut edits) {
            *index = stamp.map(|stamp| Index { stamp, spans: stored });
            return Ok(false);
        }
        let changes = edits.changes;
        let dir = document.path.parent().context("a store file needs a parent folder")?;
        paths::create_private_dir(dir)?;
        // Copied from the old file to the new one as it goes, so neither is held in memory whole;
        // the old file is closed (the copy ends) before the new one replaces it, as Windows needs.
        // On failure the index is left empty: the next read makes it from the file as it is.
        let mut spans = Spans::new();
        paths::write_private_atomically_with(&document.path, |out| {
            spans = document.encode(old, stored, changes, out)?;
            Ok(())
        })?;
        if let Some((_, stamp)) = document.open()? {
            *index = Some(Index { stamp, spans });
        }
        Ok(true)
    }
}

impl<V> Edits<'_, V> {
    /// Set entry `key` to `value`; `true` when there was no entry `key`.
    pub(crate) fn insert(&mut self, key: String, value: V) -> bool {
        let new = !self.has(&key);
        self.changes.insert(key, Some(value));
        new
    }

    /// Remove entry `key`; `true` when there was one.
    pub(crate) fn remove(&mut self, key: &str) -> bool {
        let had = self.has(key);
        if had {
            self.changes.insert(key.to_string(), None);
        }
        had
    }

    fn has(&self, key: &str) -> bool {
        match self.changes.get(key) {
            Some(change) => change.is_some(),
            None => find(self.stored, key).is_some(),
        }
    }
}

/// Where the value of `key` is, in `spans` sorted by key.
fn find(spans: &[(Box<str>, Span)], key: &str) -> Option<Span> {
    let found = spans.binary_search_by(|(kept, _)| (**kept).cmp(key)).ok()?;
    Some(spans[found].1)
}

/// The `count` spans of `spans` by key, in key order, with the keys of `previous` where they are
/// the same: an index made again allocates only the keys it has not seen.
fn keyed<'k>(previous: Option<Index>, count: usize, spans: impl Iterator<Item = (&'k str, Span)>) -> Spans {
    let mut previous = previous.map(|index| index.spans).unwrap_or_default().into_iter().peekable();
    let mut keyed = Spans::with_capacity(count);
    for (key, span) in spans {
        while previous.next_if(|(kept, _)| &**kept < key).is_some() {}
        let key = previous.next_if(|(kept, _)| &**kept == key).map_or_else(|| key.into(), |(kept, _)| kept);
        keyed.push((key, span));
    }
    keyed
}

impl<'de: 'a, 'a> Deserialize<'de> for Positions<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Entries<'a> {
            type Value = Positions<'a>;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("an object of entries")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Positions<'a>, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or_default());
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Positions(entries))
            }
        }
        deserializer.deserialize_map(Entries(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::Document;

    fn document(dir: &tempfile::TempDir) -> Document<String> {
        Document::new(dir.path().join("document.json"), &dir.path().join("locks"))
    }

    /// Set the entry `key` to `value`.
    fn try_set(document: &Document<String>, key: &str, value: &str) -> anyhow::Result<bool> {
        document.lock()?.change(|entries| {
            entries.insert(key.into(), value.into());
            true
        })
    }

    fn set(document: &Document<String>, key: &str, value: &str) {
        assert!(try_set(document, key, value).unwrap());
    }

    /// Write `text` as the document's file, private as latchkey writes it.
    fn write_file(document: &Document<String>, text: &str) {
        crate::paths::write_private_atomically(document.path(), text.as_bytes()).unwrap();
    }

    #[test]
    fn readers_never_miss_an_entry_while_this_process_writes_and_its_writes_keep_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let document = document(&dir);
        set(&document, "key", "0");
        assert_eq!(document.get("key").unwrap().as_deref(), Some("0"));
        let writing = AtomicBool::new(true);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    while writing.load(Ordering::Relaxed) {
                        assert!(document.get("key").unwrap().is_some(), "a reader found no entry while the file was written");
                        // Not flat out: under Wine every look at the file is a round trip to its
                        // server, and readers that never pause slow the writes to a crawl.
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                });
            }
            // Every write is tried before any is checked: a failed one must not leave the readers
            // reading for ever.
            let written: Vec<anyhow::Result<bool>> = (1..=20).map(|n| try_set(&document, "key", &n.to_string())).collect();
            writing.store(false, Ordering::Relaxed);
            for result in written {
                assert!(result.unwrap());
            }
        });
        assert_eq!(document.indexings.load(Ordering::Relaxed), 0, "readers read the whole file after this process wrote it");
        assert_eq!(document.get("key").unwrap().as_deref(), Some("20"));
        // Another process's write is read from the file.
        let other = super::tests::document(&dir);
        set(&other, "key", "theirs");
        assert_eq!(document.get("key").unwrap().as_deref(), Some("theirs"));
        assert_eq!(document.indexings.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_read_takes_its_entry_from_the_file_not_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        let document = document(&dir);
        set(&document, "a", "first");
        set(&document, "b", "second");
        assert_eq!(document.get("b").unwrap().as_deref(), Some("second"));
        // The same length in the same place, and the stamp kept: only a read of the file itself
        // finds the new value.
        let file = fs::read_to_string(document.path()).unwrap().replace("\"second\"", "\"SECOND\"");
        let times = fs::metadata(document.path()).unwrap().modified().unwrap();
        fs::write(document.path(), file).unwrap();
        fs::File::options().write(true).open(document.path()).unwrap().set_modified(times).unwrap();
        #[cfg(unix)]
        {
            // A rewrite in place changes the change time, which the stamp holds: what is
            // checked here is that no value is kept, so the index is made current by hand.
            let mut index = document.index.lock().unwrap();
            if let Some(kept) = index.as_mut() {
                kept.stamp = super::Stamp::of(&fs::metadata(document.path()).unwrap());
            }
        }
        assert_eq!(document.get("b").unwrap().as_deref(), Some("SECOND"));
        assert_eq!(document.get("a").unwrap().as_deref(), Some("first"));
        assert_eq!(document.indexings.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_change_that_changes_nothing_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let document = document(&dir);
        assert!(!document.lock().unwrap().change(|entries| entries.remove("key")).unwrap());
        assert!(!document.path().exists());
    }

    #[test]
    fn the_file_has_an_entry_a_line_and_an_earlier_layout_is_read_and_rewritten_so() {
        let dir = tempfile::tempdir().unwrap();
        let document = document(&dir);
        // As latchkey wrote it before, pretty-printed.
        write_file(&document, "{\n  \"version\": 1,\n  \"entries\": {\n    \"a\": \"x\\\"y\",\n    \"b\\\"c\": \"z\"\n  }\n}\n");
        assert_eq!(document.get("a").unwrap().as_deref(), Some("x\"y"));
        assert_eq!(document.get("b\"c").unwrap().as_deref(), Some("z"));
        set(&document, "d", "new");
        assert!(document.lock().unwrap().change(|entries| entries.remove("b\"c")).unwrap());
        assert_eq!(
            fs::read_to_string(document.path()).unwrap(),
            "{\n  \"version\": 1,\n  \"entries\": {\n    \"a\": \"x\\\"y\",\n    \"d\": \"new\"\n  }\n}\n"
        );
        assert_eq!(
            document.entries_as::<String>().unwrap().into_iter().collect::<Vec<_>>(),
            [("a".to_string(), "x\"y".to_string()), ("d".to_string(), "new".to_string())]
        );
        assert_eq!(document.get("d").unwrap().as_deref(), Some("new"));
        assert_eq!(document.get("b\"c").unwrap(), None);
        assert!(document.lock().unwrap().change(|entries| entries.remove("a") && entries.remove("d")).unwrap());
        assert_eq!(fs::read_to_string(document.path()).unwrap(), "{\n  \"version\": 1,\n  \"entries\": {}\n}\n");
        assert_eq!(document.get("a").unwrap(), None);
        // A key written twice (by hand): the last, as a JSON map reads it, and written once.
        write_file(&document, r#"{"version": 1, "entries": {"b": "1", "a": "first", "a": "last", "c": "3"}}"#);
        assert_eq!(document.get("a").unwrap().as_deref(), Some("last"));
        set(&document, "d", "4");
        let entries = document.entries_as::<String>().unwrap();
        assert_eq!(entries.values().collect::<Vec<_>>(), ["last", "1", "3", "4"]);
        assert_eq!(fs::read_to_string(document.path()).unwrap().matches("\"a\"").count(), 1);
    }

    #[test]
    fn an_entry_written_over_several_lines_is_put_on_one_at_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let document: Document<Vec<String>> = Document::new(dir.path().join("document.json"), &dir.path().join("locks"));
        // An object or list value, as the pretty-printed layout of an earlier latchkey wrote it.
        let earlier = "{\n  \"version\": 1,\n  \"entries\": {\n    \"a\": [\n      \"x\",\n      \"y\"\n    ]\n  }\n}\n";
        crate::paths::write_private_atomically(document.path(), earlier.as_bytes()).unwrap();
        assert_eq!(document.get("a").unwrap(), Some(vec!["x".to_string(), "y".to_string()]));
        assert!(document.lock().unwrap().change(|entries| entries.insert("b".into(), vec![])).unwrap());
        assert_eq!(
            fs::read_to_string(document.path()).unwrap(),
            "{\n  \"version\": 1,\n  \"entries\": {\n    \"a\": [\"x\",\"y\"],\n    \"b\": []\n  }\n}\n"
        );
        assert_eq!(document.get("a").unwrap(), Some(vec!["x".to_string(), "y".to_string()]));
    }

    #[test]
    fn a_damaged_entry_is_named_without_its_value_and_the_others_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let document = document(&dir);
        write_file(&document, r#"{"version": 1, "entries": {"good": "fine", "bad": {"token": "precious-VALUE"}}}"#);
        let error = document.get("bad").unwrap_err().to_string();
        assert!(error.contains("entry `bad`") && error.contains("line 1"), "{error}");
        assert!(!error.contains("precious-VALUE"), "the error repeats a secret: {error}");
        assert_eq!(document.get("good").unwrap().as_deref(), Some("fine"));
        // A change keeps the damaged entry as it is rather than lose it.
        set(&document, "new", "entry");
        assert!(fs::read_to_string(document.path()).unwrap().contains(r#""bad": {"token": "precious-VALUE"}"#));
    }
}
