//! The simulator's file system: [`SimFiles`], an in-memory tree that answers the same
//! [`FileSystem`] calls as the OS one, with seeded faults of its own.
//!
//! Faults ([`FileFaults`]) are drawn from a generator seeded by the caller (from the run's
//! seed), so a seed gives one trace: short reads (a read returns fewer bytes than asked),
//! `EIO` on a read, a file that shrinks or changes between `open` (the stat) and the reads
//! that follow, a file that vanishes after it was opened (its reads fail), and a slow disk
//! (an `open` or a listing that completes after a delay in virtual time, on the loop's clock).
//!
//! Every open file is a snapshot: later [`SimFiles::write`]s replace the tree's entry, not
//! the bytes a reader already holds, as with a file replaced by rename on a real disk.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use eddy_core::file::{
    DirEntry, EntryKind, FileContent, FileFuture, FileSystem, Metadata, OpenFile, Opened, RelPath,
};
use eddy_core::Duration;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How often each file-system fault happens; every probability is per call.
#[derive(Clone, Debug, PartialEq)]
pub struct FileFaults {
    /// A read returns a random shorter count (at least one byte).
    pub short_read: f64,
    /// A read fails with an I/O error (`EIO`).
    pub read_error: f64,
    /// An open file is cut short after its stat: reads end before the stated length.
    pub shrink_after_open: f64,
    /// An open file's bytes change after its stat (same length, different content).
    pub change_after_open: f64,
    /// An open file vanishes after its stat: every read fails with `NotFound`.
    pub vanish_after_open: f64,
    /// An open or a listing waits for the disk before it answers.
    pub slow: f64,
    /// The longest such wait (the wait is uniform up to it).
    pub slow_delay: Duration,
}

impl FileFaults {
    /// No faults: a perfect, instant disk.
    pub fn none() -> FileFaults {
        FileFaults {
            short_read: 0.0,
            read_error: 0.0,
            shrink_after_open: 0.0,
            change_after_open: 0.0,
            vanish_after_open: 0.0,
            slow: 0.0,
            slow_delay: Duration::ZERO,
        }
    }

    /// Every fault at a moderate rate, for chaos scenarios.
    pub fn chaos() -> FileFaults {
        FileFaults {
            short_read: 0.3,
            read_error: 0.02,
            shrink_after_open: 0.03,
            change_after_open: 0.03,
            vanish_after_open: 0.02,
            slow: 0.3,
            slow_delay: Duration::from_millis(50),
        }
    }

    /// Faults drawn from `rng` (swarm testing: each seed turns on a different subset).
    pub fn swarm(rng: &mut impl Rng) -> FileFaults {
        let mut p = |max: f64| {
            if rng.gen_bool(0.5) {
                rng.gen_range(0.0..max)
            } else {
                0.0
            }
        };
        FileFaults {
            short_read: p(0.6),
            read_error: p(0.05),
            shrink_after_open: p(0.05),
            change_after_open: p(0.05),
            vanish_after_open: p(0.05),
            slow: p(0.5),
            slow_delay: Duration::from_millis(100),
        }
    }
}

impl Default for FileFaults {
    fn default() -> FileFaults {
        FileFaults::none()
    }
}

#[derive(Clone, Debug)]
enum Node {
    File { bytes: Bytes, modified: u64 },
    Dir { modified: u64 },
}

impl Node {
    fn metadata(&self) -> Metadata {
        let (kind, len, modified) = match self {
            Node::File { bytes, modified } => (EntryKind::File, bytes.len() as u64, *modified),
            Node::Dir { modified } => (EntryKind::Dir, 0, *modified),
        };
        Metadata {
            kind,
            len,
            modified_secs: modified,
            modified_nanos: 0,
        }
    }
}

#[derive(Debug)]
struct Tree {
    nodes: BTreeMap<String, Node>,
    rng: Arc<Mutex<ChaCha8Rng>>,
    faults: FileFaults,
    /// Modification time given to entries written without one (seconds since the epoch).
    clock_secs: u64,
}

/// An in-memory file system with seeded faults.
#[derive(Debug)]
pub struct SimFiles {
    tree: Mutex<Tree>,
}

/// What the reads of one open file do.
#[derive(Debug)]
enum ReadFate {
    Intact,
    /// Reads see this (shorter or changed) content instead of what the stat described.
    Replaced(Bytes),
    Vanished,
}

/// One open file: a snapshot of its bytes and the faults its reads meet.
#[derive(Debug)]
struct SimFile {
    bytes: Bytes,
    fate: ReadFate,
    rng: Arc<Mutex<ChaCha8Rng>>,
    faults: FileFaults,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FileContent for SimFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let bytes = match &self.fate {
            ReadFate::Intact => &self.bytes,
            ReadFate::Replaced(other) => other,
            ReadFate::Vanished => {
                return Err(io::Error::new(io::ErrorKind::NotFound, "file vanished"));
            }
        };
        let mut rng = lock(&self.rng);
        if rng.gen_bool(self.faults.read_error) {
            return Err(io::Error::other("simulated EIO"));
        }
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let mut n = buf.len().min(bytes.len() - start);
        if n > 1 && rng.gen_bool(self.faults.short_read) {
            n = rng.gen_range(1..n);
        }
        buf[..n].copy_from_slice(&bytes[start..start + n]);
        Ok(n)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl SimFiles {
    /// An empty tree (just the root directory) whose faults draw from `seed`.
    pub fn new(seed: u64, faults: FileFaults) -> SimFiles {
        let mut nodes = BTreeMap::new();
        nodes.insert(String::new(), Node::Dir { modified: 0 });
        SimFiles {
            tree: Mutex::new(Tree {
                nodes,
                rng: Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(seed))),
                faults,
                clock_secs: 1_700_000_000,
            }),
        }
    }

    /// Writes (creates or replaces) the file at `path`, making its parent directories.
    pub fn write(&self, path: &str, bytes: impl Into<Bytes>) -> io::Result<()> {
        let path =
            RelPath::new(path).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut tree = lock(&self.tree);
        tree.clock_secs += 1;
        let modified = tree.clock_secs;
        tree.make_parents(&path, modified)?;
        if let Some(Node::Dir { .. }) = tree.nodes.get(path.as_str()) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a directory is there",
            ));
        }
        tree.nodes.insert(
            path.as_str().to_owned(),
            Node::File {
                bytes: bytes.into(),
                modified,
            },
        );
        Ok(())
    }

    /// Makes the directory at `path` and its parents.
    pub fn create_dir_all(&self, path: &str) -> io::Result<()> {
        let path =
            RelPath::new(path).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut tree = lock(&self.tree);
        let modified = tree.clock_secs;
        tree.make_parents(&path, modified)?;
        match tree.nodes.get(path.as_str()) {
            Some(Node::File { .. }) => Err(io::Error::new(io::ErrorKind::AlreadyExists, "a file")),
            Some(Node::Dir { .. }) => Ok(()),
            None => {
                tree.nodes
                    .insert(path.as_str().to_owned(), Node::Dir { modified });
                Ok(())
            }
        }
    }

    /// Removes the file (or the directory and everything below it) at `path`.
    pub fn remove(&self, path: &str) -> io::Result<()> {
        let path =
            RelPath::new(path).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if path.is_root() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "the root"));
        }
        let mut tree = lock(&self.tree);
        if tree.nodes.remove(path.as_str()).is_none() {
            return Err(io::ErrorKind::NotFound.into());
        }
        let prefix = format!("{}/", path.as_str());
        tree.nodes.retain(|k, _| !k.starts_with(&prefix));
        Ok(())
    }

    /// Sets the modification time of the entry at `path` (seconds since the epoch).
    pub fn set_modified(&self, path: &str, secs: u64) -> io::Result<()> {
        let mut tree = lock(&self.tree);
        match tree.nodes.get_mut(path) {
            Some(Node::File { modified, .. } | Node::Dir { modified }) => {
                *modified = secs;
                Ok(())
            }
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }

    /// Replaces the fault rates from now on.
    pub fn set_faults(&self, faults: FileFaults) {
        lock(&self.tree).faults = faults;
    }

    /// The bytes stored at `path` now, if it is a file (for a test's oracle).
    pub fn contents(&self, path: &str) -> Option<Bytes> {
        match lock(&self.tree).nodes.get(path) {
            Some(Node::File { bytes, .. }) => Some(bytes.clone()),
            _ => None,
        }
    }

    /// Answers after the disk's delay, if this call draws one.
    fn answer<T: 'static>(&self, tree: &Tree, result: io::Result<T>) -> FileFuture<T> {
        let delay = {
            let mut rng = lock(&tree.rng);
            if tree.faults.slow > 0.0 && rng.gen_bool(tree.faults.slow) {
                let max = tree.faults.slow_delay.as_micros().max(1) as u64;
                Some(Duration::from_micros(rng.gen_range(0..max)))
            } else {
                None
            }
        };
        match delay {
            None => FileFuture::ready(result),
            Some(delay) => FileFuture::pending(async move {
                eddy_core::task::sleep(delay).await;
                result
            }),
        }
    }
}

impl Tree {
    fn make_parents(&mut self, path: &RelPath, modified: u64) -> io::Result<()> {
        let mut at = String::new();
        let names: Vec<&str> = path.names().collect();
        for name in names.iter().take(names.len().saturating_sub(1)) {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(name);
            match self.nodes.get(&at) {
                Some(Node::Dir { .. }) => {}
                Some(Node::File { .. }) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{at} is a file"),
                    ));
                }
                None => {
                    self.nodes.insert(at.clone(), Node::Dir { modified });
                }
            }
        }
        Ok(())
    }

    /// What the reads of a freshly opened `bytes` will see.
    fn draw_fate(&self, bytes: &Bytes) -> ReadFate {
        let mut rng = lock(&self.rng);
        let f = &self.faults;
        if rng.gen_bool(f.vanish_after_open) {
            ReadFate::Vanished
        } else if !bytes.is_empty() && rng.gen_bool(f.shrink_after_open) {
            ReadFate::Replaced(bytes.slice(..rng.gen_range(0..bytes.len())))
        } else if !bytes.is_empty() && rng.gen_bool(f.change_after_open) {
            let mut changed = bytes.to_vec();
            let at = rng.gen_range(0..changed.len());
            changed[at] ^= 0x20 | rng.gen_range(1..=0x1f);
            ReadFate::Replaced(changed.into())
        } else {
            ReadFate::Intact
        }
    }
}

impl FileSystem for SimFiles {
    fn open(&self, path: &RelPath) -> FileFuture<Opened> {
        let tree = lock(&self.tree);
        let result = match tree.nodes.get(path.as_str()) {
            None => Err(io::ErrorKind::NotFound.into()),
            Some(node @ Node::Dir { .. }) => Ok(Opened::Dir(node.metadata())),
            Some(node @ Node::File { bytes, .. }) => Ok(Opened::File(OpenFile {
                metadata: node.metadata(),
                content: Arc::new(SimFile {
                    bytes: bytes.clone(),
                    fate: tree.draw_fate(bytes),
                    rng: tree.rng.clone(),
                    faults: tree.faults.clone(),
                }),
            })),
        };
        self.answer(&tree, result)
    }

    fn read_dir(&self, path: &RelPath) -> FileFuture<Vec<DirEntry>> {
        let tree = lock(&self.tree);
        let result = match tree.nodes.get(path.as_str()) {
            None => Err(io::ErrorKind::NotFound.into()),
            Some(Node::File { .. }) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a directory",
            )),
            Some(Node::Dir { .. }) => {
                let prefix = if path.is_root() {
                    String::new()
                } else {
                    format!("{}/", path.as_str())
                };
                Ok(tree
                    .nodes
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .filter(|(k, _)| k.len() > prefix.len() && !k[prefix.len()..].contains('/'))
                    .map(|(k, node)| DirEntry {
                        name: k[prefix.len()..].to_owned(),
                        metadata: node.metadata(),
                    })
                    .collect())
            }
        };
        self.answer(&tree, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(p: &str) -> RelPath {
        RelPath::new(p).unwrap()
    }

    fn open_now(fs: &SimFiles, p: &str) -> io::Result<Opened> {
        fs.open(&rel(p)).now().expect("no slow disk")
    }

    #[test]
    fn files_and_directories_are_listed_and_read_back() {
        let fs = SimFiles::new(1, FileFaults::none());
        fs.write("a/b.txt", &b"hello"[..]).unwrap();
        fs.write("a/c/d.txt", &b"x"[..]).unwrap();
        fs.write("top", &b"t"[..]).unwrap();
        let Opened::File(f) = open_now(&fs, "a/b.txt").unwrap() else {
            panic!("a file")
        };
        assert_eq!(f.read_to_vec(100).unwrap(), b"hello");
        assert!(matches!(open_now(&fs, "a/c").unwrap(), Opened::Dir(_)));
        let names = |p: &str| -> Vec<String> {
            let list = fs.read_dir(&rel(p)).now().unwrap().unwrap();
            list.into_iter().map(|e| e.name).collect()
        };
        assert_eq!(names(""), ["a", "top"]);
        assert_eq!(names("a"), ["b.txt", "c"]);
        assert_eq!(
            open_now(&fs, "nope").err().unwrap().kind(),
            io::ErrorKind::NotFound
        );
        fs.remove("a").unwrap();
        assert_eq!(names(""), ["top"]);
    }

    #[test]
    fn an_open_file_is_a_snapshot() {
        let fs = SimFiles::new(1, FileFaults::none());
        fs.write("f", &b"old"[..]).unwrap();
        let Opened::File(f) = open_now(&fs, "f").unwrap() else {
            panic!("a file")
        };
        fs.write("f", &b"newer"[..]).unwrap();
        assert_eq!(f.read_to_vec(100).unwrap(), b"old");
    }

    #[test]
    fn faults_are_reproducible_from_the_seed_and_reads_never_lie_about_length() {
        let run = |seed| {
            let fs = SimFiles::new(seed, FileFaults::chaos());
            fs.write("f", vec![7u8; 10_000]).unwrap();
            let mut outcomes = Vec::new();
            for _ in 0..50 {
                let Some(Ok(Opened::File(f))) = fs.open(&rel("f")).now().ok() else {
                    outcomes.push("slow".to_owned());
                    continue;
                };
                match f.read_to_vec(20_000) {
                    Ok(v) => {
                        assert!(v.len() <= 10_000);
                        outcomes.push(format!("{}", v.len()));
                    }
                    Err(e) => outcomes.push(format!("{:?}", e.kind())),
                }
            }
            outcomes
        };
        let a = run(9);
        assert_eq!(a, run(9));
        assert_ne!(a, run(10));
        assert!(a.iter().any(|o| o == "10000"), "{a:?}");
    }
}
