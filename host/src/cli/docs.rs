//! `latchkey completions <shell>` and `latchkey man`: generated from the clap definitions, so they
//! always match the commands of this binary.
//!
//! Both print to stdout rather than install anything: `cargo install` puts only the binary in
//! place, so the user (or a package build) redirects the output where their shell or `man` looks,
//! as rustup, gh and uv have their users do (`latchkey completions bash >
//! ~/.local/share/bash-completion/completions/latchkey`, `latchkey man >
//! ~/.local/share/man/man1/latchkey.1`). `man --out-dir` writes one page per command, for
//! packagers.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, Failure};

#[derive(Args)]
pub struct CompletionsArgs {
    shell: Shell,
}

#[derive(Args)]
pub struct ManArgs {
    /// Write `latchkey.1` and a page per subcommand (`latchkey-client-connect.1`...) into this
    /// folder instead of printing `latchkey.1`.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// The clap definition of the whole command line.
pub fn command() -> clap::Command {
    Cli::command()
}

pub fn completions(args: CompletionsArgs) -> Result<(), Failure> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command(), "latchkey", &mut script);
    print(&script)
}

pub fn man(args: ManArgs) -> Result<(), Failure> {
    match args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command(), &dir).with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
            Ok(())
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command()).render(&mut page).context("cannot render the man page")?;
            print(&page)
        }
    }
}

/// Write `bytes` to stdout; a reader that stops early (`| head`) is not an error.
fn print(bytes: &[u8]) -> Result<(), Failure> {
    match std::io::stdout().lock().write_all(bytes).and_then(|()| std::io::stdout().lock().flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::from(error).context("cannot write to stdout").into())
        }
        _ => Ok(()),
    }
}
