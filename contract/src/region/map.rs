//! Mapping the region's file on a huge page boundary.

use super::{io, ShmError};
use crate::layout::HUGE_PAGE;
use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::ptr::NonNull;

/// Maps `len` bytes of `file` (shared, read-write) at an address that is a multiple of
/// [`HUGE_PAGE`]. A 2 MiB page of the file maps with one page-table entry only where the
/// virtual address and the file offset agree modulo 2 MiB, so every process maps the region
/// so aligned, and the table's huge pages ([`huge::HugeBacking`]) cost each worker one TLB
/// entry per 2 MiB instead of 512.
pub(super) fn map(file: &File, len: usize, path: &Path) -> Result<NonNull<u8>, ShmError> {
    let span = len + HUGE_PAGE;
    // SAFETY: an anonymous, inaccessible reservation with no address hint, only to find
    // `span` free bytes; checked for MAP_FAILED.
    let reserved = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            span,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if reserved == libc::MAP_FAILED {
        return Err(io(path, "mmap")(std::io::Error::last_os_error()));
    }
    let base = reserved as usize;
    let start = base.next_multiple_of(HUGE_PAGE);
    // SAFETY: `start..start + len` lies inside the reservation just made, which nothing else
    // uses: MAP_FIXED replaces only our own reservation there. A shared read-write mapping of
    // an open descriptor of at least `len` bytes (checked by the callers).
    let ptr = unsafe {
        libc::mmap(
            start as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED,
            file.as_raw_fd(),
            0,
        )
    };
    let error = (ptr == libc::MAP_FAILED).then(std::io::Error::last_os_error);
    let end = (start + len).next_multiple_of(page_size());
    // SAFETY: the reservation's slack before `start` and after the mapping's last page: ours,
    // and referenced by nothing. When the file could not be mapped, `start..end` is left as
    // it is: a failed MAP_FIXED may already have unmapped our reservation there (older
    // kernels), and another thread may have mapped something in its place since. At worst
    // some address space stays reserved.
    unsafe {
        if start > base {
            libc::munmap(reserved, start - base);
        }
        if base + span > end {
            libc::munmap(end as *mut libc::c_void, base + span - end);
        }
    }
    if let Some(e) = error {
        return Err(io(path, "mmap")(e));
    }
    NonNull::new(ptr.cast::<u8>())
        .ok_or_else(|| io(path, "mmap")(std::io::Error::other("null mapping")))
}

pub(super) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}
