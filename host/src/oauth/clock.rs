//! This machine's clock, compared with the `Date` header of the OAuth servers latchkey talks to.
//!
//! Token lifetimes are relative (`expires_in`), but what is checked against them is absolute: an
//! ID token's `iat` and `exp`, a signed client assertion's `exp`, the expiry latchkey stores and
//! compares with the clock before every refresh. A clock minutes off makes a fresh token look
//! expired (or a stale one fresh), and the failures it causes name something else. So every
//! answer from an OAuth server with a `Date` header is a reading of the clock; the latest one is
//! kept in a small file for `latchkey doctor`, which reaches no server itself.
//!
//! A `Date` header has a resolution of one second and is written before the answer travels, so
//! a reading is good to a second or two: far finer than the minutes that matter.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One comparison of the clock with a server's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    /// `scheme://host:port` of the server that answered (never its path: it may carry a secret).
    pub origin: String,
    /// The server's clock minus this machine's, in seconds: positive when this clock is behind.
    pub offset_seconds: i64,
    /// When the reading was taken, in seconds since the Unix epoch (this machine's clock).
    pub taken_at: u64,
}

impl Reading {
    /// The reading an answer from `origin` with the `Date` header `date`, received `now`, gives;
    /// `None` when the header is not an HTTP date.
    pub fn from_date_header(origin: &str, date: &str, now: SystemTime) -> Option<Reading> {
        let server = httpdate::parse_http_date(date.trim()).ok()?;
        let offset_seconds = match server.duration_since(now) {
            Ok(ahead) => i64::try_from(ahead.as_secs()).ok()?,
            Err(behind) => -i64::try_from(behind.duration().as_secs()).ok()?,
        };
        let taken_at = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
        Some(Reading { origin: origin.to_string(), offset_seconds, taken_at })
    }

    /// How long ago the reading was taken, by this machine's clock (zero if it is in the future).
    pub fn age(&self, now: SystemTime) -> Duration {
        let taken = UNIX_EPOCH + Duration::from_secs(self.taken_at);
        now.duration_since(taken).unwrap_or_default()
    }
}

/// Where readings are kept: a file, written when the reading changes (another server, an offset
/// that moved) or when the kept one is an hour old, so that busy refreshing does not rewrite it
/// for every token.
#[derive(Debug)]
pub struct ClockFile {
    path: PathBuf,
    last: Mutex<Option<Reading>>,
}

/// How old the kept reading may grow before the same reading is written again.
const REWRITE_AFTER: Duration = Duration::from_secs(3600);

impl ClockFile {
    pub fn new(path: PathBuf) -> ClockFile {
        ClockFile { path, last: Mutex::new(None) }
    }

    /// Keep `reading` unless it says what the kept one says. A file that cannot be written only
    /// costs the doctor its clock check, so the error is logged, not returned.
    pub fn record(&self, reading: Reading) {
        let mut last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let unchanged = last.as_ref().is_some_and(|kept| {
            kept.origin == reading.origin
                && kept.offset_seconds.abs_diff(reading.offset_seconds) <= 1
                && reading.taken_at.saturating_sub(kept.taken_at) < REWRITE_AFTER.as_secs()
        });
        if unchanged {
            return;
        }
        let written = serde_json::to_vec_pretty(&reading).map_err(anyhow::Error::from).and_then(|bytes| {
            if let Some(dir) = self.path.parent() {
                crate::paths::create_private_dir(dir)?;
            }
            crate::paths::write_private_atomically(&self.path, &bytes)
        });
        match written {
            Ok(()) => *last = Some(reading),
            Err(error) => tracing::debug!("cannot keep the clock reading in {}: {error:#}", self.path.display()),
        }
    }

    /// The reading kept at `path`, if there is one that parses.
    pub fn read(path: &Path) -> Option<Reading> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_header_gives_the_offset_in_both_directions() {
        let now = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let ahead = httpdate::fmt_http_date(now + Duration::from_secs(420));
        let reading = Reading::from_date_header("https://auth.example", &ahead, now).unwrap();
        assert_eq!((reading.offset_seconds, reading.taken_at), (420, 1_780_000_000));
        let behind = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(Reading::from_date_header("https://auth.example", &behind, now).unwrap().offset_seconds, -90);
        assert_eq!(Reading::from_date_header("https://auth.example", "yesterday", now), None);
        assert_eq!(reading.age(now + Duration::from_secs(5)), Duration::from_secs(5));
    }

    #[test]
    fn the_kept_reading_is_rewritten_only_when_it_changes_or_ages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache/clock.json");
        let clock = ClockFile::new(path.clone());
        let first = Reading { origin: "https://a.example".into(), offset_seconds: 3, taken_at: 1000 };
        clock.record(first.clone());
        assert_eq!(ClockFile::read(&path), Some(first));

        // The same offset a minute later: not worth a write.
        clock.record(Reading { origin: "https://a.example".into(), offset_seconds: 4, taken_at: 1060 });
        assert_eq!(ClockFile::read(&path).unwrap().taken_at, 1000);

        // Another server, a moved offset, or an old reading: written.
        for (origin, offset, at) in
            [("https://b.example", 4, 1100), ("https://b.example", 300, 1200), ("https://b.example", 300, 1200 + 3600)]
        {
            let reading = Reading { origin: origin.into(), offset_seconds: offset, taken_at: at };
            clock.record(reading.clone());
            assert_eq!(ClockFile::read(&path), Some(reading));
        }
    }
}
