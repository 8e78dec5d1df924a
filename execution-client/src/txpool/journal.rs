//! The journal of local transactions, so what users sent to this node survives a restart.
//!
//! Format: a sequence of records `[u32 big-endian length][EIP-2718 bytes]`. On start the journal
//! is read record by record (never the whole file at once), its transactions re-added, and the
//! file rewritten with only those still in the pool (write to a temporary file, then rename).
//! A tail that cannot be read (a record cut short by a crash, a length no transaction can have,
//! an I/O error) ends the read with a warning: what came before it is still restored.
//!
//! Appends alone would let the file grow without bound (every local transaction ever sent,
//! mined or evicted long ago), so once it passes a size it is rewritten with the local
//! transactions still live in the pool (see [`Journal::compact_above`]).

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufReader, BufWriter, Read, Write},
    path::{Path, PathBuf},
};

/// Size past which a node's journal is compacted to the live local transactions.
pub const DEFAULT_COMPACT_BYTES: u64 = 16 * 1024 * 1024;

/// The journal could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("transaction journal {path}: {source}")]
pub struct JournalError {
    /// The file.
    pub path: String,
    /// The I/O error.
    pub source: io::Error,
}

/// The encoded transactions a compaction keeps (the pool's live local transactions).
pub type LiveRecords = Box<dyn Fn() -> Vec<Vec<u8>> + Send>;

/// When and to what the journal is compacted.
struct Compaction {
    threshold: u64,
    live: LiveRecords,
}

/// An append-only file of locally submitted transactions.
pub struct Journal {
    path: PathBuf,
    file: BufWriter<File>,
    /// Bytes in the file, counting what the buffer has not yet handed to the OS.
    size: u64,
    /// Size right after the last rewrite: the next compaction waits for twice that, so a journal
    /// whose live transactions alone exceed the threshold is not rewritten on every append.
    compacted_size: u64,
    compaction: Option<Compaction>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("size", &self.size)
            .field("threshold", &self.compaction.as_ref().map(|c| c.threshold))
            .finish()
    }
}

impl Journal {
    /// Opens the journal at `path` for reading record by record (no records if it does not
    /// exist). Records longer than `max_record` bytes are taken for corruption.
    pub fn load(
        path: &Path,
        max_record: usize,
    ) -> Result<JournalReader<BufReader<File>>, JournalError> {
        let file = match File::open(path) {
            Ok(file) => Some(BufReader::new(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => return Err(JournalError { path: path.display().to_string(), source }),
        };
        Ok(JournalReader {
            reader: file,
            max_record,
            path: path.display().to_string(),
            corrupt_tail: None,
        })
    }

    /// Rewrites the journal with `records` and opens it for appending.
    pub fn rewrite<'a>(
        path: &Path,
        records: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self, JournalError> {
        let (file, size) = write_atomically(path, records)?;
        Ok(Self { path: path.to_path_buf(), file, size, compacted_size: size, compaction: None })
    }

    /// Compacts the journal to what `live` returns whenever it grows past `threshold` bytes (and
    /// past twice its size after the previous compaction).
    pub fn compact_above(
        mut self,
        threshold: u64,
        live: impl Fn() -> Vec<Vec<u8>> + Send + 'static,
    ) -> Self {
        self.compaction = Some(Compaction { threshold, live: Box::new(live) });
        self
    }

    /// Bytes in the journal.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one transaction and hands it to the OS (survives a process crash); compacts the
    /// journal if that made it too large.
    pub fn append(&mut self, encoded: &[u8]) -> Result<(), JournalError> {
        let path = &self.path;
        write_record(&mut self.file, encoded)
            .and_then(|()| self.file.flush())
            .map_err(|source| JournalError { path: path.display().to_string(), source })?;
        self.size += 4 + encoded.len() as u64;
        if let Some(compaction) = &self.compaction
            && self.size > compaction.threshold.max(self.compacted_size.saturating_mul(2))
        {
            let live = (compaction.live)();
            let (file, size) = write_atomically(&self.path, live.iter().map(Vec::as_slice))?;
            tracing::debug!(
                before = self.size,
                after = size,
                "local transaction journal compacted"
            );
            self.file = file;
            self.size = size;
            self.compacted_size = size;
        }
        Ok(())
    }
}

/// Writes `records` to a temporary file, renames it over `path` and opens it for appending;
/// returns the file and its size. A crash leaves either the old journal or the new one.
fn write_atomically<'a>(
    path: &Path,
    records: impl IntoIterator<Item = &'a [u8]>,
) -> Result<(BufWriter<File>, u64), JournalError> {
    let err = |source| JournalError { path: path.display().to_string(), source };
    let tmp = path.with_extension("tmp");
    let mut size = 0u64;
    {
        let mut out = BufWriter::new(File::create(&tmp).map_err(err)?);
        for record in records {
            write_record(&mut out, record).map_err(err)?;
            size += 4 + record.len() as u64;
        }
        out.flush().map_err(err)?;
        out.get_ref().sync_all().map_err(err)?;
    }
    fs::rename(&tmp, path).map_err(err)?;
    let file = OpenOptions::new().append(true).open(path).map_err(err)?;
    Ok((BufWriter::new(file), size))
}

fn write_record(out: &mut impl Write, record: &[u8]) -> io::Result<()> {
    let len = u32::try_from(record.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record too large"))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(record)
}

/// The records of a journal, read one at a time; stops (with a warning) at a corrupt tail.
#[derive(Debug)]
pub struct JournalReader<R> {
    reader: Option<R>,
    max_record: usize,
    path: String,
    corrupt_tail: Option<String>,
}

impl<R: Read> JournalReader<R> {
    /// Reads records from `reader`; `path` names it in warnings.
    pub fn new(reader: R, max_record: usize, path: impl Into<String>) -> Self {
        Self { reader: Some(reader), max_record, path: path.into(), corrupt_tail: None }
    }

    /// Why reading stopped before the end of the journal, if it did.
    pub fn corrupt_tail(&self) -> Option<&str> {
        self.corrupt_tail.as_deref()
    }

    fn read_record(reader: &mut R, max_record: usize) -> Result<Option<Vec<u8>>, String> {
        let mut header = [0u8; 4];
        let mut filled = 0;
        while filled < header.len() {
            match reader.read(&mut header[filled..]) {
                Ok(0) if filled == 0 => return Ok(None),
                Ok(0) => return Err("record length cut short".into()),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        let len = u32::from_be_bytes(header) as usize;
        if len > max_record {
            return Err(format!(
                "record of {len} bytes, larger than any transaction ({max_record})"
            ));
        }
        let mut record = vec![0u8; len];
        reader.read_exact(&mut record).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => format!("record of {len} bytes cut short"),
            _ => e.to_string(),
        })?;
        Ok(Some(record))
    }
}

impl<R: Read> Iterator for JournalReader<R> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        let reader = self.reader.as_mut()?;
        match Self::read_record(reader, self.max_record) {
            Ok(Some(record)) => Some(record),
            Ok(None) => {
                self.reader = None;
                None
            }
            Err(why) => {
                // A crash during an append, or a damaged disk: keep what came before.
                tracing::warn!(journal = %self.path, %why, "skipping the unreadable tail of the transaction journal");
                self.corrupt_tail = Some(why);
                self.reader = None;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::*;

    fn load(path: &Path) -> Vec<Vec<u8>> {
        Journal::load(path, 1024).unwrap().collect()
    }

    #[test]
    fn records_round_trip_and_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transactions.journal");
        assert!(load(&path).is_empty());
        let mut journal = Journal::rewrite(&path, []).unwrap();
        journal.append(b"first").unwrap();
        journal.append(b"second").unwrap();
        drop(journal);
        // A crash mid-append leaves a partial record.
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0, 0, 0, 9, b'x']);
        fs::write(&path, bytes).unwrap();
        let mut reader = Journal::load(&path, 1024).unwrap();
        assert_eq!(
            reader.by_ref().collect::<Vec<_>>(),
            vec![b"first".to_vec(), b"second".to_vec()]
        );
        assert_eq!(reader.corrupt_tail(), Some("record of 9 bytes cut short"));
        let journal = Journal::rewrite(&path, [b"second".as_slice()]).unwrap();
        drop(journal);
        assert_eq!(load(&path), vec![b"second".to_vec()]);
    }

    #[test]
    fn grows_past_its_threshold_only_until_compacted_to_the_live_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transactions.journal");
        // What the pool still holds: the last two records appended.
        let live = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
        let source = live.clone();
        let mut journal = Journal::rewrite(&path, [])
            .unwrap()
            .compact_above(1_000, move || source.lock().clone());
        for i in 0..100u8 {
            let record = vec![i; 96];
            {
                let mut live = live.lock();
                live.push(record.clone());
                if live.len() > 2 {
                    live.remove(0);
                }
            }
            journal.append(&record).unwrap();
            let on_disk = fs::metadata(&path).unwrap().len();
            assert!(on_disk <= 1_000, "journal at {on_disk} bytes after {} appends", i + 1);
            assert_eq!(on_disk, journal.size());
        }
        drop(journal);
        let records = load(&path);
        assert_eq!(records.last(), Some(&vec![99u8; 96]));
        assert!(records.contains(&vec![98u8; 96]));
        assert!(!records.contains(&vec![0u8; 96]), "the dead records are gone");
    }

    #[test]
    fn live_records_over_the_threshold_are_not_rewritten_on_every_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transactions.journal");
        let mut journal =
            Journal::rewrite(&path, []).unwrap().compact_above(100, || vec![vec![7u8; 496]]);
        journal.append(&[1; 96]).unwrap();
        journal.append(&[2; 96]).unwrap();
        assert_eq!(journal.size(), 500, "compacted to the live record");
        for _ in 0..5 {
            journal.append(&[3; 96]).unwrap();
        }
        assert_eq!(journal.size(), 1_000, "not again until twice the live size");
        journal.append(&[3; 96]).unwrap();
        assert_eq!(journal.size(), 500);
    }

    /// Counts the bytes a reader hands out.
    struct Counting<R> {
        inner: R,
        read: Arc<Mutex<usize>>,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            *self.read.lock() += n;
            Ok(n)
        }
    }

    #[test]
    fn load_reads_record_by_record() {
        let mut journal = Vec::new();
        for i in 0..4_000u32 {
            write_record(&mut journal, &[i as u8; 1_000]).unwrap();
        }
        let read = Arc::new(Mutex::new(0));
        let source = Counting { inner: io::Cursor::new(journal), read: read.clone() };
        let mut records = JournalReader::new(BufReader::new(source), 1_024, "test");
        assert_eq!(records.next(), Some(vec![0u8; 1_000]));
        // One buffer's worth, not the 4 MB journal.
        assert!(*read.lock() <= 64 * 1024, "{} bytes read for the first record", read.lock());
        assert_eq!(records.count(), 3_999);
    }

    /// Hands out `good` bytes, then fails as a damaged disk would.
    struct FailingAfter(io::Cursor<Vec<u8>>);

    impl Read for FailingAfter {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(io::Error::other("input/output error")),
                n => Ok(n),
            }
        }
    }

    #[test]
    fn corrupt_tail_is_skipped_with_a_warning() {
        let mut good = Vec::new();
        write_record(&mut good, b"first").unwrap();
        write_record(&mut good, b"second").unwrap();

        // A length no transaction has (the rest of the file is garbage): stop there.
        let mut garbage = good.clone();
        garbage.extend_from_slice(&[0xff; 4]);
        garbage.extend_from_slice(&[0xab; 5_000]);
        let mut reader = JournalReader::new(io::Cursor::new(garbage), 1_024, "test");
        assert_eq!(reader.by_ref().count(), 2);
        assert!(reader.corrupt_tail().unwrap().contains("larger than any transaction"));

        // An I/O error after two records: not fatal, the two are kept.
        let mut reader =
            JournalReader::new(FailingAfter(io::Cursor::new(good.clone())), 1_024, "t");
        assert_eq!(
            reader.by_ref().collect::<Vec<_>>(),
            vec![b"first".to_vec(), b"second".to_vec()]
        );
        assert_eq!(reader.corrupt_tail(), Some("input/output error"));

        // A clean end is not a warning.
        let mut reader = JournalReader::new(io::Cursor::new(good), 1_024, "test");
        assert_eq!(reader.by_ref().count(), 2);
        assert_eq!(reader.corrupt_tail(), None);
    }
}
