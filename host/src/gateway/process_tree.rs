//! A local server's whole process tree, ended with the server. A catalog `command` is often a
//! launcher whose child is the real server: `npx -y <package>`, `uvx <package>`, a shell script,
//! and on Windows a `.cmd` shim that `cmd.exe` runs. Killing the launcher alone would leave the
//! server running, busy or waiting on a pipe nobody reads. So each local server starts as the
//! leader of a process group of its own (Unix) or inside a job object that kills its processes
//! when its handle closes (Windows; process-wrap's `JobObject`, which starts the process
//! suspended so that nothing escapes the job before it is in it), and the whole group ends when
//! the upstream stops or restarts and when the gateway exits.
//!
//! The Unix group is killed when the upstream's [`ProcessTree`] is dropped, synchronously: rmcp
//! kills its child from a task it spawns on drop, and that task never runs while the runtime
//! shuts down, as it does when the gateway exits. A Windows job's handle closes when the gateway
//! ends however it ends.

use process_wrap::tokio::{CommandWrap, KillOnDrop};

/// `process`, set to start its own process tree.
pub fn command(process: tokio::process::Command) -> CommandWrap {
    let mut wrapped = CommandWrap::from(process);
    #[cfg(unix)]
    wrapped.wrap(process_wrap::tokio::ProcessGroup::leader());
    #[cfg(windows)]
    wrapped.wrap(process_wrap::tokio::JobObject);
    wrapped.wrap(KillOnDrop);
    wrapped
}

/// Ends a started server's process tree when dropped.
pub struct ProcessTree {
    #[cfg(unix)]
    group: Option<libc::pid_t>,
}

impl ProcessTree {
    /// The tree of the process `id`, started with [`command`].
    pub fn of(#[cfg_attr(not(unix), allow(unused_variables))] id: Option<u32>) -> ProcessTree {
        ProcessTree {
            #[cfg(unix)]
            group: id.and_then(|id| libc::pid_t::try_from(id).ok()).filter(|group| *group > 0),
        }
    }
}

impl Drop for ProcessTree {
    fn drop(&mut self) {
        // The leader is not reaped before rmcp's own kill (after this) waits for it, so the group's
        // id still names this group.
        #[cfg(unix)]
        if let Some(group) = self.group {
            // SAFETY: killpg has no memory effects; a group that has already gone is ESRCH.
            unsafe { libc::killpg(group, libc::SIGKILL) };
        }
    }
}
