//! Owner-only access on Windows, where Unix modes do not exist: a file or folder whose access list
//! (DACL) grants the current user full control and nobody else anything, and is *protected*, so
//! that nothing the folders above grant (Users, Authenticated Users, Everyone…) is inherited. A
//! folder's entry is inheritable: what is created in it later is owner-only too.
//!
//! `SetFileSecurityW` sets exactly this list. (`SetNamedSecurityInfoW` would also push the entry
//! down to what the folder already holds, but Wine, where the tests run, then merges in the
//! parent's entries; latchkey makes its folders private before it writes into them, and makes each
//! private file so itself.) Administrators can still take ownership, as root reads a 0600 file.

use std::ffi::c_void;
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::path::Path;
use std::ptr;

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
use windows_sys::Win32::Security::{
    ACCESS_ALLOWED_ACE, ACL, ACL_REVISION, AddAccessAllowedAceEx, CONTAINER_INHERIT_ACE, DACL_SECURITY_INFORMATION, GetLengthSid,
    GetTokenInformation, InitializeAcl, InitializeSecurityDescriptor, OBJECT_INHERIT_ACE, PROTECTED_DACL_SECURITY_INFORMATION,
    PSECURITY_DESCRIPTOR, SE_DACL_PROTECTED, SECURITY_DESCRIPTOR, SetFileSecurityW, SetSecurityDescriptorControl,
    SetSecurityDescriptorDacl, TOKEN_QUERY, TOKEN_USER, TokenUser,
};
use windows_sys::Win32::Storage::FileSystem::FILE_ALL_ACCESS;
use windows_sys::Win32::System::SystemServices::SECURITY_DESCRIPTOR_REVISION;
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

/// Give `path` an access list with one entry: full control for the current user. `inheritable`
/// (for a folder): the entry passes on to the files and folders created in it.
pub fn restrict_to_current_user(path: &Path, inheritable: bool) -> io::Result<()> {
    let user = CurrentUser::get()?;
    let sid = user.sid();
    // SAFETY: `sid` points into `user`, which outlives every call here; the ACL buffer is sized as
    // Windows documents (the ACL header, the ACE without its first SID word, the SID) and
    // u32-aligned; the descriptor refers to the ACL buffer, which outlives it; `wide` ends in NUL.
    unsafe {
        let size = size_of::<ACL>() + size_of::<ACCESS_ALLOWED_ACE>() - size_of::<u32>() + GetLengthSid(sid) as usize;
        let mut buffer = vec![0u32; size.div_ceil(size_of::<u32>())];
        let acl = buffer.as_mut_ptr().cast::<ACL>();
        let flags = if inheritable { OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE } else { 0 };
        let mut descriptor: SECURITY_DESCRIPTOR = std::mem::zeroed();
        let descriptor: PSECURITY_DESCRIPTOR = (&raw mut descriptor).cast();
        let wide: Vec<u16> = path.as_os_str().encode_wide().chain([0]).collect();
        let done = InitializeAcl(acl, size as u32, ACL_REVISION) != 0
            && AddAccessAllowedAceEx(acl, ACL_REVISION, flags, FILE_ALL_ACCESS, sid) != 0
            && InitializeSecurityDescriptor(descriptor, SECURITY_DESCRIPTOR_REVISION) != 0
            && SetSecurityDescriptorDacl(descriptor, 1, acl, 0) != 0
            && SetSecurityDescriptorControl(descriptor, SE_DACL_PROTECTED, SE_DACL_PROTECTED) != 0
            && SetFileSecurityW(wide.as_ptr(), DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION, descriptor) != 0;
        if !done {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The user this process runs as: its token's `TOKEN_USER`, which holds the SID.
pub struct CurrentUser {
    /// u64 words: the structure holds a pointer.
    buffer: Vec<u64>,
}

impl CurrentUser {
    pub fn get() -> io::Result<CurrentUser> {
        // SAFETY: the token handle is closed on every path; GetTokenInformation writes at most
        // `length` bytes into a buffer of at least that size.
        unsafe {
            let mut token: HANDLE = ptr::null_mut();
            if OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) == 0 {
                return Err(io::Error::last_os_error());
            }
            let mut length = 0u32;
            GetTokenInformation(token, TokenUser, ptr::null_mut(), 0, &mut length);
            let mut buffer = vec![0u64; (length as usize).div_ceil(size_of::<u64>())];
            let filled = GetTokenInformation(token, TokenUser, buffer.as_mut_ptr().cast::<c_void>(), length, &mut length);
            let error = io::Error::last_os_error();
            CloseHandle(token);
            if filled == 0 {
                return Err(error);
            }
            Ok(CurrentUser { buffer })
        }
    }

    /// The user's SID, valid for as long as `self`.
    pub fn sid(&self) -> *mut c_void {
        // SAFETY: the buffer holds the TOKEN_USER that GetTokenInformation wrote.
        unsafe { (*self.buffer.as_ptr().cast::<TOKEN_USER>()).User.Sid }
    }
}

/// Reading an access list back, for the tests.
#[cfg(test)]
pub mod read {
    use windows_sys::Win32::Security::{
        ACE_HEADER, ACL_SIZE_INFORMATION, AclSizeInformation, EqualSid, GetAce, GetAclInformation, GetFileSecurityW,
        GetSecurityDescriptorDacl, IsWellKnownSid, WinLocalSystemSid,
    };
    use windows_sys::Win32::System::SystemServices::ACCESS_ALLOWED_ACE_TYPE;

    use super::*;

    /// Whom an entry names.
    #[derive(Debug, PartialEq, Eq)]
    pub enum Who {
        CurrentUser,
        /// The operating system's own account (`LocalSystem`).
        System,
        Other,
    }

    /// One entry of an access list.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Entry {
        pub allowed: bool,
        pub who: Who,
        pub access: u32,
    }

    /// The entries of `path`'s access list (`None`: it has none, which grants everyone everything).
    pub fn access_list(path: &Path) -> io::Result<Option<Vec<Entry>>> {
        let user = CurrentUser::get()?;
        let wide: Vec<u16> = path.as_os_str().encode_wide().chain([0]).collect();
        // SAFETY: the descriptor buffer has the length Windows asked for, u64-aligned, and `dacl`
        // points into it; each entry is read as the layout its header names (allowed and denied
        // entries share one).
        unsafe {
            let mut length = 0u32;
            GetFileSecurityW(wide.as_ptr(), DACL_SECURITY_INFORMATION, ptr::null_mut(), 0, &mut length);
            let mut buffer = vec![0u64; (length as usize).div_ceil(size_of::<u64>())];
            let descriptor: PSECURITY_DESCRIPTOR = buffer.as_mut_ptr().cast();
            if GetFileSecurityW(wide.as_ptr(), DACL_SECURITY_INFORMATION, descriptor, length, &mut length) == 0 {
                return Err(io::Error::last_os_error());
            }
            let (mut present, mut defaulted) = (0, 0);
            let mut dacl: *mut ACL = ptr::null_mut();
            GetSecurityDescriptorDacl(descriptor, &mut present, &mut dacl, &mut defaulted);
            let entries = (present != 0 && !dacl.is_null()).then(|| {
                let mut size: ACL_SIZE_INFORMATION = std::mem::zeroed();
                GetAclInformation(dacl, (&raw mut size).cast(), size_of::<ACL_SIZE_INFORMATION>() as u32, AclSizeInformation);
                (0..size.AceCount)
                    .filter_map(|index| {
                        let mut ace: *mut c_void = ptr::null_mut();
                        (GetAce(dacl, index, &mut ace) != 0).then_some(ace)
                    })
                    .map(|ace| {
                        let header = &*ace.cast::<ACE_HEADER>();
                        let entry = &*ace.cast::<ACCESS_ALLOWED_ACE>();
                        let sid = (&raw const entry.SidStart).cast_mut().cast::<c_void>();
                        let who = if EqualSid(sid, user.sid()) != 0 {
                            Who::CurrentUser
                        } else if IsWellKnownSid(sid, WinLocalSystemSid) != 0 {
                            Who::System
                        } else {
                            Who::Other
                        };
                        Entry { allowed: u32::from(header.AceType) == ACCESS_ALLOWED_ACE_TYPE, who, access: entry.Mask }
                    })
                    .collect()
            });
            Ok(entries)
        }
    }
}
