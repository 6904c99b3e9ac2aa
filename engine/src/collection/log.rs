//! The append-only log that makes a collection durable.
//!
//! One file per collection. It starts with an 8-byte magic, then records, each framed as
//!
//! ```text
//! [payload length: u32 LE][CRC-32 of the payload: u32 LE][payload]
//! ```
//!
//! A payload is a tag byte and the record's fields in little-endian binary (see [`Record`]).
//! Appends are written in one `write` and `fsync`ed before the caller answers, so an
//! acknowledged face is on disk. A crash can only leave the *last* record incomplete (a torn
//! tail): on open it is cut off, since nobody was told it had been written. A bad record in the
//! middle of the file is real corruption and refuses to load rather than silently drop faces.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::face::{BoundingBox, EMBEDDING_DIM, Embedding};

use super::StoreError;

/// First bytes of every log file: the format and its version.
const MAGIC: &[u8; 8] = b"FGFACES1";
/// No record is anywhere near this big (a face is ~600 bytes); a larger length is garbage.
const MAX_RECORD_LEN: u32 = 64 * 1024;
const FRAME_HEADER_LEN: usize = 8;

const TAG_CREATED: u8 = 1;
const TAG_FACE_ADDED: u8 = 2;
const TAG_FACE_DELETED: u8 = 3;

/// One entry of a collection's history.
// Records live only between the disk and memory, a batch at a time: not worth boxing a face.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// Always the first record: when the collection was made and by which face model.
    Created {
        created_at: f64,
        face_model_version: String,
    },
    FaceAdded(StoredFace),
    /// A tombstone: the face no longer exists.
    FaceDeleted {
        face_id: Uuid,
    },
}

/// A face as the collection keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredFace {
    pub face_id: Uuid,
    pub image_id: Uuid,
    pub external_image_id: Option<String>,
    pub bounding_box: BoundingBox,
    /// Detector confidence, 0-100.
    pub confidence: f32,
    pub embedding: Embedding,
}

/// The open end of a log: appends records durably.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    /// Bytes known to be good; a failed append is rolled back to here.
    len: u64,
}

impl LogWriter {
    /// Create a new log holding `first`, durably (file and its folder entry).
    pub fn create(path: &Path, first: &Record) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let mut writer = LogWriter {
            path: path.to_owned(),
            file,
            len: 0,
        };
        let mut bytes = MAGIC.to_vec();
        encode(first, &mut bytes);
        writer.write_durably(&bytes)?;
        Ok(writer)
    }

    /// Open an existing log, hand every record to `on_record` in order, cut a torn tail off,
    /// and return the writer positioned at the end.
    pub fn open(
        path: &Path,
        mut on_record: impl FnMut(Record) -> Result<(), StoreError>,
    ) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let good_len = match read_records(path, BufReader::new(&file), file_len, &mut on_record)? {
            End::Clean => file_len,
            End::Torn { offset } => offset,
            End::Bad { offset, reason } => {
                if !zeros_from(&file, offset).map_err(io)? {
                    return Err(StoreError::Corrupt {
                        path: path.to_owned(),
                        offset,
                        reason,
                    });
                }
                offset
            }
        };
        if good_len < file_len {
            tracing::warn!(
                path = %path.display(),
                dropped_bytes = file_len - good_len,
                "cutting off a torn record at the end of the log (a crash during an unacknowledged write)"
            );
            file.set_len(good_len).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        Ok(LogWriter {
            path: path.to_owned(),
            file,
            len: good_len,
        })
    }

    /// Append `records` in one write and fsync them before returning.
    pub fn append(&mut self, records: &[Record]) -> Result<(), StoreError> {
        let mut bytes = Vec::with_capacity(records.len() * 640);
        for record in records {
            encode(record, &mut bytes);
        }
        self.write_durably(&bytes)
    }

    fn write_durably(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let result = self
            .file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data());
        match result {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(source) => {
                // Leave no half record behind for later appends to be stacked on: the next open
                // would otherwise see corruption in the middle of the file.
                if let Err(error) = self.file.set_len(self.len) {
                    tracing::error!(path = %self.path.display(), %error, "could not roll back a failed append");
                }
                Err(StoreError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }
}

/// How reading a log ended.
enum End {
    /// Every byte was a good record.
    Clean,
    /// The last record was cut short at this offset: a torn tail.
    Torn { offset: u64 },
    /// A bad record at this offset: a torn tail if only zeros follow, corruption otherwise.
    Bad { offset: u64, reason: String },
}

/// Read records until the end or the first bad one.
fn read_records(
    path: &Path,
    mut reader: impl Read,
    file_len: u64,
    on_record: &mut impl FnMut(Record) -> Result<(), StoreError>,
) -> Result<End, StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_owned(),
        source,
    };
    let mut magic = [0u8; 8];
    if read_full(&mut reader, &mut magic).map_err(io)? < 8 || &magic != MAGIC {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            offset: 0,
            reason: "not a facegate collection log (bad or missing header)".into(),
        });
    }
    let mut offset = MAGIC.len() as u64;
    let mut payload = Vec::new();
    loop {
        let bad = |reason: &str| {
            Ok(End::Bad {
                offset,
                reason: reason.to_owned(),
            })
        };
        let mut header = [0u8; FRAME_HEADER_LEN];
        match read_full(&mut reader, &mut header).map_err(io)? {
            0 => return Ok(End::Clean),
            FRAME_HEADER_LEN => {}
            _ => return Ok(End::Torn { offset }),
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 || len > MAX_RECORD_LEN {
            return bad("impossible record length");
        }
        payload.resize(len as usize, 0);
        if read_full(&mut reader, &mut payload).map_err(io)? < payload.len() {
            return Ok(End::Torn { offset });
        }
        let end = offset + FRAME_HEADER_LEN as u64 + u64::from(len);
        if crc32fast::hash(&payload) != crc {
            return if end == file_len {
                // The last record, half written: the append was never acknowledged.
                Ok(End::Torn { offset })
            } else {
                bad("checksum mismatch")
            };
        }
        match decode(&payload) {
            Ok(record) => on_record(record)?,
            Err(reason) => return bad(&reason),
        }
        offset = end;
    }
}

/// Whether the file holds nothing but zeros from `offset` on: what some file systems leave
/// after a crash when the file's length reached the disk before its data.
fn zeros_from(file: &File, offset: u64) -> std::io::Result<bool> {
    use std::io::{Seek, SeekFrom};
    let mut reader = BufReader::new(file);
    reader.seek(SeekFrom::Start(offset))?;
    let mut buf = [0u8; 8192];
    loop {
        let n = read_full(&mut reader, &mut buf)?;
        if n == 0 {
            return Ok(true);
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}

/// Like `read_exact`, but reports how much it got instead of failing at end of file.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Append the framed encoding of `record` to `out`.
pub fn encode(record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    match record {
        Record::Created {
            created_at,
            face_model_version,
        } => {
            out.push(TAG_CREATED);
            out.extend_from_slice(&created_at.to_le_bytes());
            put_str(out, face_model_version);
        }
        Record::FaceAdded(face) => {
            out.push(TAG_FACE_ADDED);
            out.extend_from_slice(face.face_id.as_bytes());
            out.extend_from_slice(face.image_id.as_bytes());
            match &face.external_image_id {
                Some(id) => {
                    out.push(1);
                    put_str(out, id);
                }
                None => out.push(0),
            }
            let b = face.bounding_box;
            for v in [b.left, b.top, b.width, b.height, face.confidence] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            for v in face.embedding.0 {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Record::FaceDeleted { face_id } => {
            out.push(TAG_FACE_DELETED);
            out.extend_from_slice(face_id.as_bytes());
        }
    }
    let payload = &out[start + FRAME_HEADER_LEN..];
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Strings here are ids and versions, at most 255 characters (checked by the server).
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

/// Decode one payload (already checksummed).
pub fn decode(payload: &[u8]) -> Result<Record, String> {
    let mut r = Cursor { bytes: payload };
    let record = match r.u8()? {
        TAG_CREATED => Record::Created {
            created_at: f64::from_le_bytes(r.array()?),
            face_model_version: r.string()?,
        },
        TAG_FACE_ADDED => {
            let face_id = Uuid::from_bytes(r.array()?);
            let image_id = Uuid::from_bytes(r.array()?);
            let external_image_id = match r.u8()? {
                0 => None,
                _ => Some(r.string()?),
            };
            let bounding_box = BoundingBox {
                left: r.f32()?,
                top: r.f32()?,
                width: r.f32()?,
                height: r.f32()?,
            };
            let confidence = r.f32()?;
            let mut embedding = [0f32; EMBEDDING_DIM];
            for v in &mut embedding {
                *v = r.f32()?;
            }
            Record::FaceAdded(StoredFace {
                face_id,
                image_id,
                external_image_id,
                bounding_box,
                confidence,
                embedding: Embedding(embedding),
            })
        }
        TAG_FACE_DELETED => Record::FaceDeleted {
            face_id: Uuid::from_bytes(r.array()?),
        },
        tag => return Err(format!("unknown record tag {tag}")),
    };
    if !r.bytes.is_empty() {
        return Err("trailing bytes after a record".into());
    }
    Ok(record)
}

/// Reads little-endian fields off the front of a payload.
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl Cursor<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let (head, rest) = self.bytes.split_at_checked(N).ok_or("record cut short")?;
        self.bytes = rest;
        head.try_into().map_err(|_| "record cut short".to_string())
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }
    fn f32(&mut self) -> Result<f32, String> {
        Ok(f32::from_le_bytes(self.array()?))
    }
    fn string(&mut self) -> Result<String, String> {
        let len = usize::from(u16::from_le_bytes(self.array()?));
        let (head, rest) = self.bytes.split_at_checked(len).ok_or("record cut short")?;
        self.bytes = rest;
        String::from_utf8(head.to_vec()).map_err(|_| "string is not UTF-8".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(n: u8, external: Option<&str>) -> Record {
        let mut embedding = [0f32; EMBEDDING_DIM];
        embedding[usize::from(n) % EMBEDDING_DIM] = 1.0;
        Record::FaceAdded(StoredFace {
            face_id: Uuid::from_bytes([n; 16]),
            image_id: Uuid::from_bytes([n.wrapping_add(1); 16]),
            external_image_id: external.map(str::to_owned),
            bounding_box: BoundingBox {
                left: 0.1,
                top: 0.2,
                width: 0.3,
                height: 0.4,
            },
            confidence: 99.5,
            embedding: Embedding(embedding),
        })
    }

    fn created() -> Record {
        Record::Created {
            created_at: 1_700_000_000.25,
            face_model_version: "test".into(),
        }
    }

    fn temp_log() -> PathBuf {
        std::env::temp_dir().join(format!("facegate-log-test-{}.log", Uuid::new_v4()))
    }

    fn read_all(path: &Path) -> Result<(Vec<Record>, u64), StoreError> {
        let mut records = Vec::new();
        let writer = LogWriter::open(path, |r| {
            records.push(r);
            Ok(())
        })?;
        Ok((records, writer.len))
    }

    #[test]
    fn every_record_kind_round_trips() {
        for record in [
            created(),
            face(7, Some("alice.jpg")),
            face(8, None),
            Record::FaceDeleted {
                face_id: Uuid::from_bytes([7; 16]),
            },
        ] {
            let mut bytes = Vec::new();
            encode(&record, &mut bytes);
            assert_eq!(decode(&bytes[FRAME_HEADER_LEN..]), Ok(record));
        }
    }

    #[test]
    fn appended_records_come_back_in_order() {
        let path = temp_log();
        let mut log = LogWriter::create(&path, &created()).unwrap();
        log.append(&[face(1, Some("a")), face(2, None)]).unwrap();
        log.append(&[Record::FaceDeleted {
            face_id: Uuid::from_bytes([1; 16]),
        }])
        .unwrap();
        drop(log);
        let (records, _) = read_all(&path).unwrap();
        assert_eq!(records.len(), 4);
        assert_eq!(records[1], face(1, Some("a")));
        assert_eq!(
            records[3],
            Record::FaceDeleted {
                face_id: Uuid::from_bytes([1; 16])
            }
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_torn_tail_is_cut_off_at_every_possible_length() {
        let path = temp_log();
        let mut log = LogWriter::create(&path, &created()).unwrap();
        log.append(&[face(1, None)]).unwrap();
        let good_len = log.len;
        log.append(&[face(2, Some("torn"))]).unwrap();
        let full_len = log.len;
        drop(log);
        let full = std::fs::read(&path).unwrap();
        for cut in good_len..full_len {
            std::fs::write(&path, &full[..cut as usize]).unwrap();
            let (records, len) = read_all(&path).unwrap();
            assert_eq!(records.len(), 2, "cut at {cut}");
            assert_eq!(len, good_len);
            assert_eq!(
                std::fs::metadata(&path).unwrap().len(),
                good_len,
                "the tail is truncated on disk"
            );
            // The log keeps working after recovery.
            let mut log = LogWriter::open(&path, |_| Ok(())).unwrap();
            log.append(&[face(3, None)]).unwrap();
            drop(log);
            assert_eq!(read_all(&path).unwrap().0.len(), 3);
        }
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_damaged_last_record_is_dropped_but_damage_in_the_middle_is_refused() {
        let path = temp_log();
        let mut log = LogWriter::create(&path, &created()).unwrap();
        log.append(&[face(1, None)]).unwrap();
        let middle = log.len;
        log.append(&[face(2, None)]).unwrap();
        drop(log);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_all(&path).unwrap().0.len(), 2);

        let mut log = LogWriter::open(&path, |_| Ok(())).unwrap();
        log.append(&[face(2, None)]).unwrap();
        drop(log);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[middle as usize - 1] ^= 0xff; // inside face(1)
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(read_all(&path), Err(StoreError::Corrupt { .. })));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_zero_filled_tail_is_cut_off() {
        // Some file systems, after a crash, keep a file's new length but not its data.
        let path = temp_log();
        let mut log = LogWriter::create(&path, &created()).unwrap();
        log.append(&[face(1, None)]).unwrap();
        let good_len = log.len;
        drop(log);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0u8; 700]);
        std::fs::write(&path, &bytes).unwrap();
        let (records, len) = read_all(&path).unwrap();
        assert_eq!((records.len(), len), (2, good_len));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_file_that_is_not_a_log_is_refused() {
        let path = temp_log();
        std::fs::write(&path, b"hello world, not a log").unwrap();
        assert!(matches!(read_all(&path), Err(StoreError::Corrupt { .. })));
        std::fs::remove_file(path).unwrap();
    }
}
