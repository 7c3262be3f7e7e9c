//! Files as an input, like sockets: the interface through which the web layer opens, lists
//! and reads files without touching a file system itself, and the [`FileRange`] a stream's
//! write queue can hold so a driver sends file bytes without copying them through user space.
//!
//! A driver supplies the [`FileSystem`]: the OS one (in `eddy-drivers`) opens files under a
//! root directory and sends ranges with `sendfile(2)`; the simulator's lives in memory and
//! injects short reads, I/O errors, files changing or vanishing, and slow disks in virtual
//! time. Paths reach it as a [`RelPath`], already checked to stay below the root.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The bytes of one open file, read at offsets (the file stays open while this lives).
pub trait FileContent: Send + Sync + 'static {
    /// Reads bytes at `offset` into `buf`; `Ok(0)` is end of file.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// The implementation, so a driver can send its own kind of file zero-copy.
    fn as_any(&self) -> &dyn Any;
}

/// A range of an open file, queued on a stream like a `Bytes` chunk.
#[derive(Clone)]
pub struct FileRange {
    file: Arc<dyn FileContent>,
    offset: u64,
    len: u64,
}

impl FileRange {
    /// `len` bytes of `file` from `offset`.
    pub fn new(file: Arc<dyn FileContent>, offset: u64, len: u64) -> FileRange {
        FileRange { file, offset, len }
    }

    /// The open file.
    pub fn file(&self) -> &Arc<dyn FileContent> {
        &self.file
    }

    /// Where the range starts in the file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// How many bytes are left in the range.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing is left.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops `n` bytes from the front (they were sent).
    pub fn advance(&mut self, n: u64) {
        assert!(n <= self.len, "advanced past the end of a file range");
        self.offset += n;
        self.len -= n;
    }

    /// Copies the front of the range into `buf` (for paths that cannot send zero-copy).
    ///
    /// A file that ends before the range does is an `UnexpectedEof` error: it changed since
    /// its length was announced, and the response it belongs to cannot be completed.
    pub fn read_front(&self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.len).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        loop {
            match self.file.read_at(self.offset, &mut buf[..want]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

impl fmt::Debug for FileRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileRange")
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish()
    }
}

/// What a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// Anything else (a device, a socket, a FIFO): never served.
    Other,
}

/// What the web layer needs to know of a file or directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// File, directory or other.
    pub kind: EntryKind,
    /// Length in bytes.
    pub len: u64,
    /// Last modification, in seconds since the Unix epoch.
    pub modified_secs: u64,
    /// The sub-second part of the modification time, in nanoseconds.
    pub modified_nanos: u32,
}

/// An opened path: a file with its content, or a directory.
pub enum Opened {
    /// A regular file, open for reading.
    File(OpenFile),
    /// A directory (list it with [`FileSystem::read_dir`]).
    Dir(Metadata),
}

/// An open regular file and its metadata, taken from the open file (not the path), so the
/// two agree even when the path is replaced meanwhile.
#[derive(Clone)]
pub struct OpenFile {
    /// The file's metadata at open.
    pub metadata: Metadata,
    /// Its bytes.
    pub content: Arc<dyn FileContent>,
}

impl OpenFile {
    /// `len` bytes from `offset`, as a range to queue on a stream.
    pub fn range(&self, offset: u64, len: u64) -> FileRange {
        FileRange::new(Arc::clone(&self.content), offset, len)
    }

    /// Reads the whole file into memory (for small files: hashing, compressing).
    pub fn read_to_vec(&self, limit: u64) -> io::Result<Vec<u8>> {
        let len = self.metadata.len;
        if len > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "file too large to read whole",
            ));
        }
        let mut out = vec![0; len as usize];
        let mut done = 0;
        while done < out.len() {
            match self.content.read_at(done as u64, &mut out[done..]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

impl fmt::Debug for OpenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenFile")
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name (no slashes).
    pub name: String,
    /// Its metadata (a symlink is described by its target).
    pub metadata: Metadata,
}

/// The file interface a driver supplies: files and directories below one root.
///
/// Operations return a [`FileFuture`], ready at once on the OS (the calls are short and
/// page-cached, as nginx makes them on its loop) and possibly pending in the simulator (slow
/// disks in virtual time).
pub trait FileSystem: Send + Sync + 'static {
    /// Opens `path`: a regular file, or a directory's metadata.
    fn open(&self, path: &RelPath) -> FileFuture<Opened>;

    /// Lists the directory at `path`, in no particular order.
    fn read_dir(&self, path: &RelPath) -> FileFuture<Vec<DirEntry>>;
}

/// The answer to a [`FileSystem`] call: ready now, or a future on the loop.
pub struct FileFuture<T>(FutureState<T>);

enum FutureState<T> {
    Ready(Option<io::Result<T>>),
    Pending(Pin<Box<dyn Future<Output = io::Result<T>>>>),
}

impl<T> FileFuture<T> {
    /// An answer available now.
    pub fn ready(result: io::Result<T>) -> FileFuture<T> {
        FileFuture(FutureState::Ready(Some(result)))
    }

    /// An answer that comes later (it must complete on the loop that polls it).
    pub fn pending(future: impl Future<Output = io::Result<T>> + 'static) -> FileFuture<T> {
        FileFuture(FutureState::Pending(Box::pin(future)))
    }

    /// The answer if it is available without waiting.
    pub fn now(self) -> Result<io::Result<T>, FileFuture<T>> {
        match self.0 {
            FutureState::Ready(Some(result)) => Ok(result),
            state => Err(FileFuture(state)),
        }
    }
}

impl<T> Unpin for FileFuture<T> {}

impl<T> fmt::Debug for FileFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.0 {
            FutureState::Ready(Some(_)) => "ready",
            FutureState::Ready(None) => "taken",
            FutureState::Pending(_) => "pending",
        };
        f.debug_tuple("FileFuture").field(&state).finish()
    }
}

impl<T> Future for FileFuture<T> {
    type Output = io::Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match &mut self.0 {
            FutureState::Ready(result) => {
                Poll::Ready(result.take().expect("FileFuture polled after completion"))
            }
            FutureState::Pending(future) => future.as_mut().poll(cx),
        }
    }
}

/// A path below a file system's root: `/`-separated names, none empty, `.` or `..`, none
/// holding a NUL or a backslash. The root itself is the empty path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(String);

/// Why a string is not a [`RelPath`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A `..` component: it would leave the directory.
    #[error("path has a '..' component")]
    ParentDir,
    /// A NUL byte, a backslash or a colon (a Windows drive or stream) in a name.
    #[error("path has a forbidden character")]
    ForbiddenChar,
    /// The path starts at the file system's root (`/etc/passwd`).
    #[error("path is absolute")]
    Absolute,
}

impl RelPath {
    /// The root.
    pub fn root() -> RelPath {
        RelPath(String::new())
    }

    /// Checks a decoded path; `.` components and repeated or trailing slashes are dropped.
    pub fn new(path: &str) -> Result<RelPath, PathError> {
        RelPath::from_string(path.to_owned())
    }

    /// [`RelPath::new`] for a path the caller owns: one already in normal form (the usual
    /// request) is kept without a copy.
    pub fn from_string(path: String) -> Result<RelPath, PathError> {
        let normal = !path.is_empty()
            && !path.starts_with('/')
            && !path.ends_with('/')
            && path
                .split('/')
                .all(|name| !matches!(name, "" | "." | "..") && !name.contains(['\0', '\\', ':']));
        if normal {
            return Ok(RelPath(path));
        }
        RelPath::normalise(&path)
    }

    fn normalise(path: &str) -> Result<RelPath, PathError> {
        if path.starts_with('/') {
            return Err(PathError::Absolute);
        }
        let mut out = String::with_capacity(path.len());
        for name in path.split('/') {
            match name {
                "" | "." => continue,
                ".." => return Err(PathError::ParentDir),
                _ if name.contains(['\0', '\\', ':']) => return Err(PathError::ForbiddenChar),
                _ => {}
            }
            if !out.is_empty() {
                out.push('/');
            }
            out.push_str(name);
        }
        Ok(RelPath(out))
    }

    /// The path as `/`-separated names (empty for the root).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The names, outermost first.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|n| !n.is_empty())
    }

    /// The last name, if any.
    pub fn file_name(&self) -> Option<&str> {
        self.0.rsplit('/').next().filter(|n| !n.is_empty())
    }

    /// This path with `name` appended (`name` must itself be one valid name).
    pub fn join(&self, name: &str) -> Result<RelPath, PathError> {
        let tail = RelPath::new(name)?;
        if self.0.is_empty() {
            return Ok(tail);
        }
        if tail.0.is_empty() {
            return Ok(self.clone());
        }
        Ok(RelPath(format!("{}/{}", self.0, tail.0)))
    }

    /// True when a name starts with a dot (hidden on Unix).
    pub fn is_hidden(&self) -> bool {
        self.names().any(|n| n.starts_with('.'))
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owned_path_in_normal_form_is_kept_and_any_other_normalised_the_same_way() {
        for p in [
            "a",
            "a/b",
            "a//b",
            "./a",
            "a/./b/",
            "",
            "/",
            ".",
            "a/..",
            "../a",
            "/etc",
            "a\\b",
            "a:b",
            "a\0b",
            ".hidden/x",
            "a b/c",
            "x/y/z/",
        ] {
            assert_eq!(
                RelPath::from_string(p.to_owned()),
                RelPath::normalise(p),
                "{p:?}"
            );
        }
    }

    struct Memory(Vec<u8>);

    impl FileContent for Memory {
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
            let start = (offset as usize).min(self.0.len());
            let n = buf.len().min(self.0.len() - start);
            buf[..n].copy_from_slice(&self.0[start..start + n]);
            Ok(n)
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    #[test]
    fn rel_path_rejects_every_way_out_of_the_root() {
        assert_eq!(RelPath::new("../etc/passwd"), Err(PathError::ParentDir));
        assert_eq!(RelPath::new("a/../../b"), Err(PathError::ParentDir));
        assert_eq!(RelPath::new("a/.."), Err(PathError::ParentDir));
        assert_eq!(RelPath::new("/etc/passwd"), Err(PathError::Absolute));
        assert_eq!(RelPath::new("a\\..\\b"), Err(PathError::ForbiddenChar));
        assert_eq!(RelPath::new("a\0b"), Err(PathError::ForbiddenChar));
        assert_eq!(RelPath::new("C:/x"), Err(PathError::ForbiddenChar));
    }

    #[test]
    fn rel_path_normalises_dots_and_slashes() {
        assert_eq!(RelPath::new("a//b/./c/").unwrap().as_str(), "a/b/c");
        assert!(RelPath::new("").unwrap().is_root());
        assert!(RelPath::new("./").unwrap().is_root());
        assert_eq!(RelPath::new("...").unwrap().as_str(), "...");
        let p = RelPath::new("css/app.css").unwrap();
        assert_eq!(p.file_name(), Some("app.css"));
        assert_eq!(p.names().collect::<Vec<_>>(), ["css", "app.css"]);
        assert_eq!(RelPath::root().join("x").unwrap().as_str(), "x");
        assert_eq!(p.join("y").unwrap().as_str(), "css/app.css/y");
        assert_eq!(p.join(".."), Err(PathError::ParentDir));
        assert!(RelPath::new("a/.git/config").unwrap().is_hidden());
        assert!(!p.is_hidden());
    }

    #[test]
    fn file_range_reads_its_front_and_reports_a_shrunk_file() {
        let file: Arc<dyn FileContent> = Arc::new(Memory(b"0123456789".to_vec()));
        let mut range = FileRange::new(Arc::clone(&file), 2, 5);
        let mut buf = [0; 3];
        assert_eq!(range.read_front(&mut buf).unwrap(), 3);
        assert_eq!(&buf, b"234");
        range.advance(3);
        let mut buf = [0; 8];
        assert_eq!(range.read_front(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"56");
        let past = FileRange::new(file, 12, 4);
        let err = past.read_front(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn file_future_is_ready_now_or_pending() {
        let ready = FileFuture::ready(Ok(7));
        assert_eq!(ready.now().unwrap().unwrap(), 7);
        let pending = FileFuture::pending(async { Ok(8) });
        let pending = pending
            .now()
            .expect_err("a pending future is not ready now");
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut pending = pending;
        let got = Pin::new(&mut pending).poll(&mut cx);
        assert!(matches!(got, Poll::Ready(Ok(8))));
    }
}
