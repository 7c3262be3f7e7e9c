//! The OS file interface: [`OsFiles`] opens and lists files below one root directory for the
//! web layer, and [`send_file`] sends an [`OsFile`] range to a socket with `sendfile(2)`.
//!
//! No path leaves the root: on Linux every open goes through `openat2(2)` with
//! `RESOLVE_BENEATH`, so the kernel itself refuses `..` and symlinks that point outside
//! (`EXDEV`). Where `openat2` is missing (older kernels, other systems, seccomp filters) the
//! path is canonicalised and checked to lie below the canonical root before it is opened.
//! Every `unsafe` of the file path lives in this module, each with its reason.

use std::any::Any;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use eddy_core::file::{
    DirEntry, EntryKind, FileContent, FileFuture, FileRange, FileSystem, Metadata, OpenFile,
    Opened, RelPath,
};
use socket2::Socket;

/// Most bytes handed to one `sendfile` call, so one large file cannot hold the loop.
pub const SENDFILE_MAX: usize = 1024 * 1024;

/// Files and directories below one root directory of the OS file system.
#[derive(Debug)]
pub struct OsFiles {
    root: File,
    canonical_root: PathBuf,
    /// `openat2` answered `ENOSYS`/`EPERM` once: use the canonicalising fallback from now on.
    no_openat2: AtomicBool,
}

/// An open regular file of the OS, read with `pread` and sent with `sendfile`.
#[derive(Debug)]
pub struct OsFile {
    file: File,
}

impl OsFile {
    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl FileContent for OsFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl OsFiles {
    /// Serves the directory `root` (which must exist and be a directory).
    pub fn new(root: impl AsRef<Path>) -> io::Result<OsFiles> {
        let canonical_root = std::fs::canonicalize(root.as_ref())?;
        let root = File::open(&canonical_root)?;
        if !root.metadata()?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", canonical_root.display()),
            ));
        }
        Ok(OsFiles {
            root,
            canonical_root,
            no_openat2: AtomicBool::new(false),
        })
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.canonical_root
    }

    /// Opens `path` for reading without leaving the root.
    fn open_beneath(&self, path: &RelPath) -> io::Result<File> {
        #[cfg(target_os = "linux")]
        if !self.no_openat2.load(Ordering::Relaxed) {
            match openat2_beneath(&self.root, path) {
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                    self.no_openat2.store(true, Ordering::Relaxed);
                }
                Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        "path leaves the served directory",
                    ));
                }
                other => return other,
            }
        }
        let full = self.checked_path(path)?;
        open_nonblocking(&full)
    }

    /// The canonical form of `path`, refused when it resolves outside the root.
    fn checked_path(&self, path: &RelPath) -> io::Result<PathBuf> {
        let full = std::fs::canonicalize(self.canonical_root.join(path.as_str()))?;
        if full.starts_with(&self.canonical_root) {
            Ok(full)
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "path leaves the served directory",
            ))
        }
    }

    fn open_now(&self, path: &RelPath) -> io::Result<Opened> {
        let file = self.open_beneath(path)?;
        let meta = file.metadata()?;
        let metadata = metadata_of(&meta);
        match metadata.kind {
            EntryKind::File => Ok(Opened::File(OpenFile {
                metadata,
                content: Arc::new(OsFile { file }),
            })),
            EntryKind::Dir => Ok(Opened::Dir(metadata)),
            EntryKind::Other => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "not a regular file",
            )),
        }
    }

    fn read_dir_now(&self, path: &RelPath) -> io::Result<Vec<DirEntry>> {
        // Opening first applies the same beneath-the-root rule to the directory itself.
        drop(self.open_beneath(path)?);
        let dir = self.checked_path(path)?;
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue; // not UTF-8: it could not be linked to faithfully
            };
            let meta = match std::fs::metadata(entry.path()) {
                Ok(meta) => meta,
                Err(_) => match entry.metadata() {
                    Ok(meta) => meta, // a dangling symlink: describe the link
                    Err(_) => continue,
                },
            };
            entries.push(DirEntry {
                name,
                metadata: metadata_of(&meta),
            });
        }
        Ok(entries)
    }
}

impl FileSystem for OsFiles {
    fn open(&self, path: &RelPath) -> FileFuture<Opened> {
        FileFuture::ready(self.open_now(path))
    }

    fn read_dir(&self, path: &RelPath) -> FileFuture<Vec<DirEntry>> {
        FileFuture::ready(self.read_dir_now(path))
    }
}

fn metadata_of(meta: &std::fs::Metadata) -> Metadata {
    let kind = if meta.is_file() {
        EntryKind::File
    } else if meta.is_dir() {
        EntryKind::Dir
    } else {
        EntryKind::Other
    };
    Metadata {
        kind,
        len: meta.len(),
        modified_secs: u64::try_from(meta.mtime()).unwrap_or(0),
        modified_nanos: u32::try_from(meta.mtime_nsec()).unwrap_or(0),
    }
}

/// Opens read-only, close-on-exec and non-blocking (a FIFO must not stall the loop).
fn open_nonblocking(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

#[cfg(target_os = "linux")]
fn openat2_beneath(root: &File, path: &RelPath) -> io::Result<File> {
    use std::ffi::CString;
    use std::os::fd::{AsRawFd, FromRawFd};

    let name = if path.is_root() { "." } else { path.as_str() };
    // The usual short path is made NUL-terminated on the stack, not in a new allocation.
    let mut stack = [0u8; 256];
    let owned;
    let name: &std::ffi::CStr = if name.len() < stack.len() {
        stack[..name.len()].copy_from_slice(name.as_bytes());
        std::ffi::CStr::from_bytes_with_nul(&stack[..=name.len()])
            .map_err(|_| io::ErrorKind::InvalidInput)?
    } else {
        owned = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
        &owned
    };
    // SAFETY: `open_how` is a plain C struct of integers; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    loop {
        // SAFETY: `root` is an open directory descriptor, `name` a NUL-terminated string that
        // outlives the call, and `how`/its size describe a valid `open_how`.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_raw_fd(),
                name.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            let fd = i32::try_from(fd).map_err(|_| io::ErrorKind::InvalidData)?;
            // SAFETY: the kernel returned a new descriptor that nothing else owns.
            return Ok(unsafe { File::from_raw_fd(fd) });
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Sends the front of `range` to `sock`: zero-copy for an [`OsFile`] with `sendfile(2)`,
/// otherwise read into `scratch` and sent from there. Returns `(sent, offered)` like the
/// vectored send, so the caller's readiness bookkeeping is the same.
pub(crate) fn send_file(
    sock: &Socket,
    range: &FileRange,
    scratch: &mut Vec<u8>,
) -> io::Result<(usize, usize)> {
    let offered = usize::try_from(range.len())
        .unwrap_or(usize::MAX)
        .min(SENDFILE_MAX);
    if offered == 0 {
        return Ok((0, 0));
    }
    #[cfg(target_os = "linux")]
    if let Some(os) = range.file().as_any().downcast_ref::<OsFile>() {
        match sendfile(sock, os.file(), range.offset(), offered) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {}
            other => return other.map(|n| (n, offered)),
        }
    }
    let want = offered.min(64 * 1024);
    scratch.resize(want, 0);
    let n = range.read_front(&mut scratch[..want])?;
    let sent = crate::sys::send_chunks(sock, std::iter::once(&scratch[..n]), false)?.0;
    // What the socket did not take is read again next time: the file is the buffer.
    Ok((sent, n))
}

#[cfg(target_os = "linux")]
fn sendfile(sock: &Socket, file: &File, offset: u64, len: usize) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut off = libc::off_t::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
    loop {
        // SAFETY: both descriptors are open for the call's duration and `off` is a valid
        // out-parameter; sendfile reads the file at `off` without moving its file position.
        let n = unsafe { libc::sendfile(sock.as_raw_fd(), file.as_raw_fd(), &mut off, len) };
        match n {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()), // the file shrank
            n if n > 0 => return Ok(n as usize),
            _ => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(p: &str) -> RelPath {
        RelPath::new(p).unwrap()
    }

    fn opened(files: &OsFiles, p: &str) -> io::Result<Opened> {
        files.open(&rel(p)).now().expect("the OS answers at once")
    }

    #[test]
    fn opens_files_and_directories_below_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.txt"), b"hello").unwrap();
        let files = OsFiles::new(dir.path()).unwrap();
        let Opened::File(f) = opened(&files, "sub/a.txt").unwrap() else {
            panic!("a file")
        };
        assert_eq!(f.metadata.len, 5);
        assert_eq!(f.read_to_vec(100).unwrap(), b"hello");
        assert!(matches!(opened(&files, "sub").unwrap(), Opened::Dir(_)));
        assert!(matches!(opened(&files, "").unwrap(), Opened::Dir(_)));
        let err = opened(&files, "missing").err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let list = files.read_dir(&rel("sub")).now().unwrap().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].name, "a.txt");
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused_and_inside_ones_followed() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"no").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real.txt"), b"yes").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("out")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("outdir")).unwrap();
        std::os::unix::fs::symlink("real.txt", dir.path().join("in")).unwrap();
        let files = OsFiles::new(dir.path()).unwrap();
        for p in ["out", "outdir/secret", "outdir"] {
            let err = opened(&files, p).err().expect(p);
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{p}");
        }
        assert!(files.read_dir(&rel("outdir")).now().unwrap().is_err());
        let Opened::File(f) = opened(&files, "in").unwrap() else {
            panic!("a file")
        };
        assert_eq!(f.read_to_vec(10).unwrap(), b"yes");
        // The fallback path refuses the same ways out.
        files.no_openat2.store(true, Ordering::Relaxed);
        for p in ["out", "outdir/secret"] {
            let err = opened(&files, p).err().expect(p);
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{p}");
        }
        assert!(matches!(opened(&files, "in").unwrap(), Opened::File(_)));
    }

    #[test]
    fn fifos_and_devices_are_not_files() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let files = OsFiles::new(dir.path()).unwrap();
        let err = opened(&files, "pipe").err().unwrap(); // and it did not block
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    }
}
