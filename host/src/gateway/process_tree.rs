//! A local server's whole process tree, ended with the server. A catalog `command` is often a
//! launcher whose child is the real server: `npx -y <package>`, `uvx <package>`, a shell script,
//! and on Windows a `.cmd` shim that `cmd.exe` runs. Killing the launcher alone would leave the
//! server running, busy or waiting on a pipe nobody reads. So each local server starts as the
//! leader of a process group of its own (Unix) or inside a job object that kills its processes
//! when its handle closes (Windows; process-wrap's `JobObject`, which starts the process
//! suspended so that nothing escapes the job before it is in it), and the whole group ends when
//! the upstream stops or restarts and when the gateway exits.
//!
//! The Unix group is killed when the upstream's [`ProcessTree`] is dropped, synchronously, then
//! the leader itself (process-wrap's `KillOnDrop`; tokio reaps it): a kill from a spawned task
//! would never run while the runtime shuts down, as it does when the gateway exits. A Windows
//! job's handle closes when the gateway ends however it ends.

use std::process::Stdio;

use process_wrap::tokio::{ChildWrapper, CommandWrap, KillOnDrop};
use tokio::process::{ChildStdin, ChildStdout};

/// A started server's process tree, which ends when this is dropped.
pub struct ProcessTree {
    #[cfg(unix)]
    group: Option<libc::pid_t>,
    /// Last, so the group is killed before the leader is.
    #[allow(dead_code, reason = "held for its kill on drop")]
    leader: Box<dyn ChildWrapper>,
}

/// Start `process` as the leader of a process tree of its own, speaking on its stdin and stdout
/// (its stderr is the gateway's): the tree, and the leader's stdout and stdin.
pub fn spawn(process: tokio::process::Command) -> std::io::Result<(ProcessTree, ChildStdout, ChildStdin)> {
    let mut wrapped = CommandWrap::from(process);
    #[cfg(unix)]
    wrapped.wrap(process_wrap::tokio::ProcessGroup::leader());
    #[cfg(windows)]
    wrapped.wrap(process_wrap::tokio::JobObject);
    wrapped.wrap(KillOnDrop);
    wrapped.command_mut().stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut leader = wrapped.spawn()?;
    let (Some(stdout), Some(stdin)) = (leader.stdout().take(), leader.stdin().take()) else {
        return Err(std::io::Error::other("the process was started without pipes for its stdin and stdout"));
    };
    let tree = ProcessTree {
        #[cfg(unix)]
        group: leader.id().and_then(|id| libc::pid_t::try_from(id).ok()).filter(|group| *group > 0),
        leader,
    };
    Ok((tree, stdout, stdin))
}

impl Drop for ProcessTree {
    fn drop(&mut self) {
        // The leader is not reaped before its own kill (after this), so the group's id still
        // names this group.
        #[cfg(unix)]
        if let Some(group) = self.group {
            // SAFETY: killpg has no memory effects; a group that has already gone is ESRCH.
            unsafe { libc::killpg(group, libc::SIGKILL) };
        }
    }
}
