//! The journal of local transactions, so what users sent to this node survives a restart.
//!
//! Format: a sequence of records `[u32 big-endian length][EIP-2718 bytes]`. A record cut short
//! by a crash is ignored on load. On start the journal is read, its transactions re-added, and
//! the file rewritten with only those still in the pool (write to a temporary file, then rename).

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
};

/// The journal could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("transaction journal {path}: {source}")]
pub struct JournalError {
    /// The file.
    pub path: String,
    /// The I/O error.
    pub source: io::Error,
}

/// An append-only file of locally submitted transactions.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: BufWriter<File>,
}

impl Journal {
    /// Reads every complete record of the journal at `path` (none if it does not exist).
    pub fn load(path: &Path) -> Result<Vec<Vec<u8>>, JournalError> {
        let data = match fs::read(path) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(JournalError { path: path.display().to_string(), source }),
        };
        let mut records = Vec::new();
        let mut rest = data.as_slice();
        while rest.len() >= 4 {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let Some(record) = rest.get(4..4 + len) else { break };
            records.push(record.to_vec());
            rest = &rest[4 + len..];
        }
        Ok(records)
    }

    /// Rewrites the journal with `records` and opens it for appending.
    pub fn rewrite<'a>(
        path: &Path,
        records: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self, JournalError> {
        let err = |source| JournalError { path: path.display().to_string(), source };
        let tmp = path.with_extension("tmp");
        {
            let mut out = BufWriter::new(File::create(&tmp).map_err(err)?);
            for record in records {
                write_record(&mut out, record).map_err(err)?;
            }
            out.flush().map_err(err)?;
            out.get_ref().sync_all().map_err(err)?;
        }
        fs::rename(&tmp, path).map_err(err)?;
        let file = OpenOptions::new().append(true).open(path).map_err(err)?;
        Ok(Self { path: path.to_path_buf(), file: BufWriter::new(file) })
    }

    /// Appends one transaction and hands it to the OS (survives a process crash).
    pub fn append(&mut self, encoded: &[u8]) -> Result<(), JournalError> {
        let path = &self.path;
        write_record(&mut self.file, encoded)
            .and_then(|()| self.file.flush())
            .map_err(|source| JournalError { path: path.display().to_string(), source })
    }
}

fn write_record(out: &mut impl Write, record: &[u8]) -> io::Result<()> {
    let len = u32::try_from(record.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record too large"))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transactions.journal");
        assert!(Journal::load(&path).unwrap().is_empty());
        let mut journal = Journal::rewrite(&path, []).unwrap();
        journal.append(b"first").unwrap();
        journal.append(b"second").unwrap();
        drop(journal);
        // A crash mid-append leaves a partial record.
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0, 0, 0, 9, b'x']);
        fs::write(&path, bytes).unwrap();
        assert_eq!(Journal::load(&path).unwrap(), vec![b"first".to_vec(), b"second".to_vec()]);
        let journal = Journal::rewrite(&path, [b"second".as_slice()]).unwrap();
        drop(journal);
        assert_eq!(Journal::load(&path).unwrap(), vec![b"second".to_vec()]);
    }
}
