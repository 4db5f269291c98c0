//! The AI clients latchkey knows: where each keeps its MCP servers on Linux, macOS and Windows, for
//! the user and (where the client has one) for a project, and in which format.
//!
//! Sources, checked against each client's documentation in December 2026:
//! - Claude Desktop: `claude_desktop_config.json` in `~/Library/Application Support/Claude` (macOS)
//!   and `%APPDATA%\Claude` (Windows), `mcpServers`. There is no official Linux build; the
//!   community builds read `~/.config/Claude`, which is the platform folder used here.
//! - Claude Code: `~/.claude.json` (user scope, top-level `mcpServers`; `CLAUDE_CONFIG_DIR`
//!   moves it) and `.mcp.json` at a project's root, entries `{"type": "stdio", ...}`.
//! - Cursor: `~/.cursor/mcp.json` and a project's `.cursor/mcp.json`, `mcpServers`.
//! - VS Code: `mcp.json` in the user profile folder (`Code/User` in the platform's configuration
//!   folder) and a workspace's `.vscode/mcp.json`, `servers` with `"type": "stdio"`; JSONC.
//! - Windsurf: `~/.codeium/windsurf/mcp_config.json` on every platform, `mcpServers`; no
//!   project file.
//! - Zed: `settings.json` in `~/.config/zed` (Linux, macOS) or `%APPDATA%\Zed` (Windows) and a
//!   project's `.zed/settings.json`, `context_servers`; JSONC.
//! - Codex CLI: `~/.codex/config.toml` (`CODEX_HOME` moves it) and a trusted project's
//!   `.codex/config.toml`, `[mcp_servers.<name>]`.
//! - Gemini CLI: `~/.gemini/settings.json` and a project's `.gemini/settings.json`, `mcpServers`;
//!   comments are stripped before `JSON.parse`, so trailing commas are not allowed.
//! - opencode: `~/.config/opencode/opencode.json` (the same on every platform) and a project's
//!   `opencode.json`, `mcp` with `{"type": "local", "command": [...]}`; JSONC, and an existing
//!   `opencode.jsonc` is used instead.
//! - Continue: MCP server block files in `~/.continue/mcpServers/` and a workspace's
//!   `.continue/mcpServers/`; latchkey writes its own block, `latchkey.yaml`, instead of editing
//!   `config.yaml` (no YAML crate edits a document and keeps its comments).

use std::path::{Path, PathBuf};

use super::Dialect::{Comments, Jsonc, Strict};
use super::Format;

/// An AI client: its id on the command line, its name, and where its configuration lives.
#[derive(Debug)]
pub struct Client {
    pub id: &'static str,
    pub name: &'static str,
    pub format: Format,
    user: UserFile,
    /// The project file, relative to the project folder; `None` when the client has none.
    project: Option<&'static str>,
    /// Programs whose presence on PATH means the client is installed.
    programs: &'static [&'static str],
}

/// Where a client's user-level file lives, from the folders of this user.
#[derive(Debug)]
enum UserFile {
    /// Under the home folder on every platform.
    Home(&'static str),
    /// Under the platform's configuration folder: `~/.config` (or `XDG_CONFIG_HOME`), `~/Library/Application
    /// Support`, `%APPDATA%`.
    Config(&'static str),
    /// Under `~/.config` on Linux and macOS, and the named folder of `%APPDATA%` on Windows (Zed).
    DotConfigOr { unix: &'static str, windows: &'static str },
    /// Under a folder named by an environment variable when it is set, else under the home folder.
    HomeOrVar { var: &'static str, in_var: &'static str, in_home: &'static str },
}

use super::Format::{ContinueBlock, Json, Toml};
use super::Shape::{OpenCode, Plain, Typed};

pub const CLIENTS: &[Client] = &[
    Client {
        id: "claude-desktop",
        name: "Claude Desktop",
        format: Json { key: "mcpServers", shape: Plain, dialect: Strict },
        user: UserFile::Config("Claude/claude_desktop_config.json"),
        project: None,
        programs: &["claude-desktop"],
    },
    Client {
        id: "claude-code",
        name: "Claude Code",
        format: Json { key: "mcpServers", shape: Typed("stdio"), dialect: Strict },
        user: UserFile::HomeOrVar { var: "CLAUDE_CONFIG_DIR", in_var: ".claude.json", in_home: ".claude.json" },
        project: Some(".mcp.json"),
        programs: &["claude"],
    },
    Client {
        id: "cursor",
        name: "Cursor",
        format: Json { key: "mcpServers", shape: Plain, dialect: Strict },
        user: UserFile::Home(".cursor/mcp.json"),
        project: Some(".cursor/mcp.json"),
        programs: &["cursor"],
    },
    Client {
        id: "vscode",
        name: "VS Code",
        format: Json { key: "servers", shape: Typed("stdio"), dialect: Jsonc },
        user: UserFile::Config("Code/User/mcp.json"),
        project: Some(".vscode/mcp.json"),
        programs: &["code"],
    },
    Client {
        id: "windsurf",
        name: "Windsurf",
        format: Json { key: "mcpServers", shape: Plain, dialect: Strict },
        user: UserFile::Home(".codeium/windsurf/mcp_config.json"),
        project: None,
        programs: &["windsurf"],
    },
    Client {
        id: "zed",
        name: "Zed",
        format: Json { key: "context_servers", shape: Plain, dialect: Jsonc },
        user: UserFile::DotConfigOr { unix: "zed/settings.json", windows: "Zed/settings.json" },
        project: Some(".zed/settings.json"),
        programs: &["zed", "zeditor"],
    },
    Client {
        id: "codex",
        name: "Codex CLI",
        format: Toml,
        user: UserFile::HomeOrVar { var: "CODEX_HOME", in_var: "config.toml", in_home: ".codex/config.toml" },
        project: Some(".codex/config.toml"),
        programs: &["codex"],
    },
    Client {
        id: "gemini",
        name: "Gemini CLI",
        format: Json { key: "mcpServers", shape: Plain, dialect: Comments },
        user: UserFile::Home(".gemini/settings.json"),
        project: Some(".gemini/settings.json"),
        programs: &["gemini"],
    },
    Client {
        id: "opencode",
        name: "opencode",
        format: Json { key: "mcp", shape: OpenCode, dialect: Jsonc },
        user: UserFile::Home(".config/opencode/opencode.json"),
        project: Some("opencode.json"),
        programs: &["opencode"],
    },
    Client {
        id: "continue",
        name: "Continue",
        format: ContinueBlock,
        user: UserFile::Home(".continue/mcpServers/latchkey.yaml"),
        project: Some(".continue/mcpServers/latchkey.yaml"),
        programs: &["cn"],
    },
];

/// The client with this id.
pub fn find(id: &str) -> anyhow::Result<&'static Client> {
    CLIENTS.iter().find(|client| client.id == id).ok_or_else(|| {
        let known: Vec<&str> = CLIENTS.iter().map(|client| client.id).collect();
        anyhow::anyhow!("no client named `{id}`; the known clients are {}", known.join(", "))
    })
}

/// Which of a client's files: the user's, or a project's.
#[derive(Clone, Debug)]
pub enum Scope {
    User,
    Project(PathBuf),
}

impl Client {
    pub fn has_project_file(&self) -> bool {
        self.project.is_some()
    }

    /// The configuration file for `scope`.
    pub fn path(&self, scope: &Scope) -> anyhow::Result<PathBuf> {
        let path = match scope {
            Scope::User => self.user_path()?,
            Scope::Project(dir) => {
                let relative = self
                    .project
                    .ok_or_else(|| anyhow::anyhow!("{} has no project configuration; connect it without --project", self.name))?;
                join(dir, relative)
            }
        };
        Ok(prefer_jsonc(self, path))
    }

    fn user_path(&self) -> anyhow::Result<PathBuf> {
        let dirs = directories::BaseDirs::new()
            .ok_or_else(|| anyhow::anyhow!("cannot find the home folder (set HOME) to find {}'s configuration", self.name))?;
        let home = dirs.home_dir();
        Ok(match &self.user {
            UserFile::Home(relative) => join(home, relative),
            UserFile::Config(relative) => join(dirs.config_dir(), relative),
            UserFile::DotConfigOr { unix, windows } => {
                if cfg!(windows) {
                    join(dirs.config_dir(), windows)
                } else {
                    let config = std::env::var_os("XDG_CONFIG_HOME").filter(|dir| !dir.is_empty());
                    join(&config.map_or_else(|| home.join(".config"), PathBuf::from), unix)
                }
            }
            UserFile::HomeOrVar { var, in_var, in_home } => match std::env::var_os(var).filter(|dir| !dir.is_empty()) {
                Some(dir) => join(Path::new(&dir), in_var),
                None => join(home, in_home),
            },
        })
    }

    /// Whether the client looks installed: its configuration folder exists, or one of its programs
    /// is on PATH.
    pub fn installed(&self, user_file: &Path) -> bool {
        let folder = match self.format {
            // `~/.continue`, not the block folder, which latchkey may have created.
            ContinueBlock => user_file.parent().and_then(Path::parent),
            // `~/.claude.json` is the file itself; Claude Code also keeps `~/.claude`.
            _ if self.id == "claude-code" => return user_file.is_file() || on_path(self.programs),
            _ => user_file.parent(),
        };
        folder.is_some_and(Path::is_dir) || on_path(self.programs)
    }
}

/// `relative` (written with `/` in the table) under `base`, one component at a time, so that a
/// Windows path shown to the user has `\\` throughout.
fn join(base: &Path, relative: &str) -> PathBuf {
    relative.split('/').fold(base.to_path_buf(), |path, part| path.join(part))
}

/// opencode reads `opencode.jsonc` as well as `opencode.json`: use the one that exists.
fn prefer_jsonc(client: &Client, path: PathBuf) -> PathBuf {
    if client.id == "opencode" && !path.exists() {
        let jsonc = path.with_extension("jsonc");
        if jsonc.exists() {
            return jsonc;
        }
    }
    path
}

/// Whether one of `programs` is a file in a folder of PATH.
fn on_path(programs: &[&str]) -> bool {
    let Some(path) = std::env::var_os("PATH") else { return false };
    std::env::split_paths(&path)
        .any(|dir| programs.iter().any(|program| dir.join(format!("{program}{}", std::env::consts::EXE_SUFFIX)).is_file()))
}
