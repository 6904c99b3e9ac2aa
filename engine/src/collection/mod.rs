//! Face collections: named sets of faces, kept on disk and searched in memory.
//!
//! On disk, under the data directory:
//!
//! ```text
//! collections/<CollectionId>/faces.log    the collection's append-only log (see [`log`])
//! ```
//!
//! At start-up every log is replayed into memory ([`Collection`]); afterwards every change is
//! appended and fsynced *before* memory changes and before the caller answers, so memory never
//! holds anything the disk does not. A folder is only ever created or removed by renaming, so
//! a crash leaves either the whole collection or none of it (leftovers carry a `~` in their
//! name, a character collection ids cannot contain, and are cleared at start-up).
//!
//! Methods here block (file I/O, fsync, scanning a million faces): call them from
//! `spawn_blocking`.

pub mod log;
pub mod page;
pub mod search;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use uuid::Uuid;

use crate::face::{BoundingBox, Embedding};
use log::{LogWriter, Record, StoredFace};
use search::Embeddings;

const LOG_FILE: &str = "faces.log";

/// Why a collection operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("collection {0} not found")]
    NotFound(String),
    #[error("collection {0} already exists")]
    AlreadyExists(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is in use by another engine process")]
    Locked(PathBuf),
    #[error("{path} is corrupt at byte {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

/// A face to add: what the pipeline measured, and what the caller called the image.
#[derive(Clone, Debug)]
pub struct NewFace {
    pub image_id: Uuid,
    pub external_image_id: Option<String>,
    pub bounding_box: BoundingBox,
    pub confidence: f32,
    pub embedding: Embedding,
}

/// A face's description, without its embedding (what ListFaces returns).
#[derive(Clone, Debug, PartialEq)]
pub struct FaceEntry {
    pub face_id: Uuid,
    pub image_id: Uuid,
    pub external_image_id: Option<String>,
    pub bounding_box: BoundingBox,
    pub confidence: f32,
}

/// A search result.
#[derive(Clone, Debug)]
pub struct FaceMatch {
    pub face: FaceEntry,
    pub embedding: Embedding,
    /// Exact cosine between the query and this face.
    pub cosine: f32,
}

/// Every collection under one data directory.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    collections: RwLock<BTreeMap<String, Arc<Collection>>>,
    /// Held (locked) while the store is open: two engines appending to the same logs would
    /// interleave their records.
    _lock: std::fs::File,
}

impl Store {
    /// Open (or create) the store under `data_dir` and load every collection.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let root = data_dir.join("collections");
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        std::fs::create_dir_all(&root).map_err(io(&root))?;
        let lock_path = data_dir.join("LOCK");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        lock.try_lock()
            .map_err(|_| StoreError::Locked(data_dir.to_owned()))?;
        let mut collections = BTreeMap::new();
        for entry in std::fs::read_dir(&root).map_err(io(&root))? {
            let entry = entry.map_err(io(&root))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains('~') {
                // A create or delete that crashed half way; never acknowledged.
                tracing::info!(path = %path.display(), "removing an unfinished collection folder");
                std::fs::remove_dir_all(&path).map_err(io(&path))?;
                continue;
            }
            if !path.is_dir() {
                continue;
            }
            let collection = Collection::load(&name, &path.join(LOG_FILE))?;
            tracing::info!(collection = %name, faces = collection.face_count(), "loaded collection");
            collections.insert(name, Arc::new(collection));
        }
        Ok(Store {
            root,
            collections: RwLock::new(collections),
            _lock: lock,
        })
    }

    /// Create an empty collection, durably.
    pub fn create(
        &self,
        id: &str,
        created_at: f64,
        face_model_version: &str,
    ) -> Result<Arc<Collection>, StoreError> {
        // Holding the write lock makes "exists?" and "create" one step.
        let mut collections = write(&self.collections);
        if collections.contains_key(id) {
            return Err(StoreError::AlreadyExists(id.to_owned()));
        }
        let staging = self.root.join(format!("{id}~creating-{}", Uuid::new_v4()));
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        std::fs::create_dir(&staging).map_err(io(&staging))?;
        let first = Record::Created {
            created_at,
            face_model_version: face_model_version.to_owned(),
        };
        let writer = LogWriter::create(&staging.join(LOG_FILE), &first)?;
        let final_path = self.root.join(id);
        std::fs::rename(&staging, &final_path).map_err(io(&final_path))?;
        sync_dir(&self.root)?;
        let collection = Arc::new(Collection::new(id, created_at, face_model_version, writer));
        collections.insert(id.to_owned(), collection.clone());
        Ok(collection)
    }

    /// Delete a collection and every face in it.
    pub fn delete(&self, id: &str) -> Result<(), StoreError> {
        let mut collections = write(&self.collections);
        let collection = collections
            .get(id)
            .ok_or_else(|| StoreError::NotFound(id.to_owned()))?
            .clone();
        // Requests already holding the collection must not write to it any more.
        let mut log = lock(&collection.log);
        let path = self.root.join(id);
        let doomed = self.root.join(format!("{id}~deleting-{}", Uuid::new_v4()));
        std::fs::rename(&path, &doomed).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        sync_dir(&self.root)?;
        *log = None;
        collections.remove(id);
        drop(log);
        drop(collections);
        if let Err(error) = std::fs::remove_dir_all(&doomed) {
            // Already gone from the store's point of view; the next start-up clears it.
            tracing::warn!(path = %doomed.display(), %error, "could not remove a deleted collection's files");
        }
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<Arc<Collection>, StoreError> {
        read(&self.collections)
            .get(id)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(id.to_owned()))
    }

    /// Collection ids in order, starting after `after`: at most `limit`, and whether more follow.
    pub fn list(&self, after: Option<&str>, limit: usize) -> (Vec<Arc<Collection>>, bool) {
        let collections = read(&self.collections);
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page: Vec<Arc<Collection>> = collections
            .range::<str, _>((start, Bound::Unbounded))
            .take(limit + 1)
            .map(|(_, c)| c.clone())
            .collect();
        let more = page.len() > limit;
        page.truncate(limit);
        (page, more)
    }
}

/// One collection: its metadata, its log, and its faces in memory.
#[derive(Debug)]
pub struct Collection {
    id: String,
    created_at: f64,
    face_model_version: String,
    /// The log's writer; `None` once the collection is deleted. Every change holds this lock
    /// from the disk write to the memory update, so both see changes in the same order.
    log: Mutex<Option<LogWriter>>,
    faces: RwLock<Faces>,
}

/// The faces of a collection in memory.
#[derive(Debug, Default)]
struct Faces {
    /// Face descriptions, at the same positions as their embeddings.
    entries: Vec<FaceEntry>,
    embeddings: Embeddings,
    /// FaceId -> position; ordered, so ListFaces pages by FaceId.
    positions: BTreeMap<Uuid, usize>,
}

impl Faces {
    fn add(&mut self, face: StoredFace) {
        if self.positions.contains_key(&face.face_id) {
            return; // replaying a log that holds a face twice: keep the first
        }
        self.positions.insert(face.face_id, self.entries.len());
        self.embeddings.push(&face.embedding);
        self.entries.push(FaceEntry {
            face_id: face.face_id,
            image_id: face.image_id,
            external_image_id: face.external_image_id,
            bounding_box: face.bounding_box,
            confidence: face.confidence,
        });
    }

    fn remove(&mut self, face_id: &Uuid) -> bool {
        let Some(position) = self.positions.remove(face_id) else {
            return false;
        };
        self.entries.swap_remove(position);
        self.embeddings.swap_remove(position);
        if let Some(moved) = self.entries.get(position) {
            self.positions.insert(moved.face_id, position);
        }
        true
    }
}

impl Collection {
    fn new(id: &str, created_at: f64, face_model_version: &str, log: LogWriter) -> Self {
        Collection {
            id: id.to_owned(),
            created_at,
            face_model_version: face_model_version.to_owned(),
            log: Mutex::new(Some(log)),
            faces: RwLock::new(Faces::default()),
        }
    }

    /// Replay a collection's log.
    fn load(id: &str, path: &Path) -> Result<Self, StoreError> {
        let mut created = None;
        let mut faces = Faces::default();
        let writer = LogWriter::open(path, |record| {
            match record {
                Record::Created {
                    created_at,
                    face_model_version,
                } => created = Some((created_at, face_model_version)),
                Record::FaceAdded(face) => faces.add(face),
                Record::FaceDeleted { face_id } => {
                    faces.remove(&face_id);
                }
            }
            Ok(())
        })?;
        let (created_at, face_model_version) = created.ok_or_else(|| StoreError::Corrupt {
            path: path.to_owned(),
            offset: 0,
            reason: "the log does not start with the collection's creation".into(),
        })?;
        let collection = Collection::new(id, created_at, &face_model_version, writer);
        *write(&collection.faces) = faces;
        Ok(collection)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seconds since the Unix epoch.
    pub fn created_at(&self) -> f64 {
        self.created_at
    }

    pub fn face_model_version(&self) -> &str {
        &self.face_model_version
    }

    pub fn face_count(&self) -> usize {
        read(&self.faces).entries.len()
    }

    /// Add faces durably; each gets a new FaceId. Returns them in the order given.
    pub fn add_faces(&self, new: Vec<NewFace>) -> Result<Vec<FaceEntry>, StoreError> {
        let stored: Vec<StoredFace> = new
            .into_iter()
            .map(|f| StoredFace {
                face_id: Uuid::new_v4(),
                image_id: f.image_id,
                external_image_id: f.external_image_id,
                bounding_box: f.bounding_box,
                confidence: f.confidence,
                embedding: f.embedding,
            })
            .collect();
        let records: Vec<Record> = stored.iter().cloned().map(Record::FaceAdded).collect();
        let mut log = lock(&self.log);
        let writer = log
            .as_mut()
            .ok_or_else(|| StoreError::NotFound(self.id.clone()))?;
        writer.append(&records)?;
        let mut faces = write(&self.faces);
        let entries = stored
            .into_iter()
            .map(|face| {
                let entry = FaceEntry {
                    face_id: face.face_id,
                    image_id: face.image_id,
                    external_image_id: face.external_image_id.clone(),
                    bounding_box: face.bounding_box,
                    confidence: face.confidence,
                };
                faces.add(face);
                entry
            })
            .collect();
        Ok(entries)
    }

    /// Delete the faces that exist; returns which ones were deleted.
    pub fn delete_faces(&self, face_ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
        let mut log = lock(&self.log);
        let writer = log
            .as_mut()
            .ok_or_else(|| StoreError::NotFound(self.id.clone()))?;
        let mut existing: Vec<Uuid> = {
            let faces = read(&self.faces);
            face_ids
                .iter()
                .filter(|id| faces.positions.contains_key(id))
                .copied()
                .collect()
        };
        let mut seen = std::collections::HashSet::new();
        existing.retain(|id| seen.insert(*id));
        if existing.is_empty() {
            return Ok(existing);
        }
        let tombstones: Vec<Record> = existing
            .iter()
            .map(|&face_id| Record::FaceDeleted { face_id })
            .collect();
        writer.append(&tombstones)?;
        let mut faces = write(&self.faces);
        existing.retain(|id| faces.remove(id));
        Ok(existing)
    }

    /// Faces ordered by FaceId, starting after `after`: at most `limit`, and whether more follow.
    pub fn list_faces(&self, after: Option<Uuid>, limit: usize) -> (Vec<FaceEntry>, bool) {
        let faces = read(&self.faces);
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page: Vec<FaceEntry> = faces
            .positions
            .range((start, Bound::Unbounded))
            .take(limit + 1)
            .map(|(_, &p)| faces.entries[p].clone())
            .collect();
        let more = page.len() > limit;
        page.truncate(limit);
        (page, more)
    }

    /// The stored embedding of a face, if it exists.
    pub fn embedding(&self, face_id: &Uuid) -> Option<(FaceEntry, Embedding)> {
        let faces = read(&self.faces);
        let &position = faces.positions.get(face_id)?;
        Some((
            faces.entries[position].clone(),
            faces.embeddings.get(position),
        ))
    }

    /// The `limit` faces closest to `query` with a cosine of at least `min_cosine`, best
    /// first, leaving out `exclude` (SearchFaces does not find the face it searches with).
    pub fn search(
        &self,
        query: &Embedding,
        limit: usize,
        min_cosine: f32,
        exclude: Option<Uuid>,
    ) -> Vec<FaceMatch> {
        let faces = read(&self.faces);
        let extra = usize::from(exclude.is_some());
        faces
            .embeddings
            .search(query, limit + extra, min_cosine)
            .into_iter()
            .filter(|hit| Some(faces.entries[hit.position].face_id) != exclude)
            .take(limit)
            .map(|hit| FaceMatch {
                face: faces.entries[hit.position].clone(),
                embedding: faces.embeddings.get(hit.position),
                cosine: hit.cosine,
            })
            .collect()
    }
}

/// Make a rename or creation inside `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Io {
            path: dir.to_owned(),
            source,
        })
}

// A panic while holding one of these locks can only come from a bug in this module, and every
// change is written to disk before memory is touched: the data behind a poisoned lock is still
// consistent, so carry on with it instead of taking the whole engine down.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}
fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::search::random_unit_vectors;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("facegate-store-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn new_faces(seed: u64, n: usize) -> Vec<NewFace> {
        random_unit_vectors(seed)
            .take(n)
            .enumerate()
            .map(|(i, embedding)| NewFace {
                image_id: Uuid::new_v4(),
                external_image_id: Some(format!("img-{i}")),
                bounding_box: BoundingBox {
                    left: 0.1,
                    top: 0.1,
                    width: 0.5,
                    height: 0.5,
                },
                confidence: 99.0,
                embedding,
            })
            .collect()
    }

    #[test]
    fn faces_survive_a_reopen_and_deletions_stay_deleted() {
        let dir = temp_dir();
        let store = Store::open(&dir).unwrap();
        let c = store.create("people", 1_700_000_000.5, "v1").unwrap();
        let added = c.add_faces(new_faces(1, 10)).unwrap();
        assert_eq!(
            c.delete_faces(&[added[3].face_id, added[3].face_id, Uuid::new_v4()])
                .unwrap(),
            vec![added[3].face_id]
        );
        drop((c, store));

        let store = Store::open(&dir).unwrap();
        let c = store.get("people").unwrap();
        assert_eq!(c.face_count(), 9);
        assert_eq!(c.created_at(), 1_700_000_000.5);
        assert!(c.embedding(&added[3].face_id).is_none());
        let (entry, _) = c.embedding(&added[9].face_id).unwrap();
        assert_eq!(entry, added[9]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_data_dir_is_used_by_one_store_at_a_time() {
        let dir = temp_dir();
        let store = Store::open(&dir).unwrap();
        assert!(matches!(Store::open(&dir), Err(StoreError::Locked(_))));
        drop(store);
        Store::open(&dir).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn create_twice_fails_and_delete_removes_everything() {
        let dir = temp_dir();
        let store = Store::open(&dir).unwrap();
        store.create("a", 0.0, "v1").unwrap();
        assert!(matches!(
            store.create("a", 0.0, "v1"),
            Err(StoreError::AlreadyExists(_))
        ));
        let held = store.get("a").unwrap();
        store.delete("a").unwrap();
        assert!(matches!(store.get("a"), Err(StoreError::NotFound(_))));
        assert!(matches!(
            held.add_faces(new_faces(2, 1)),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(store.delete("a"), Err(StoreError::NotFound(_))));
        assert_eq!(
            std::fs::read_dir(dir.join("collections")).unwrap().count(),
            0
        );
        drop(store);
        // Leftovers of an interrupted create are cleared at start-up.
        std::fs::create_dir(dir.join("collections/b~creating-x")).unwrap();
        let store = Store::open(&dir).unwrap();
        assert!(store.list(None, 10).0.is_empty());
        assert_eq!(
            std::fs::read_dir(dir.join("collections")).unwrap().count(),
            0
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn listing_pages_through_every_face_once_in_face_id_order() {
        let dir = temp_dir();
        let store = Store::open(&dir).unwrap();
        let c = store.create("p", 0.0, "v1").unwrap();
        let mut added: Vec<Uuid> = c
            .add_faces(new_faces(3, 25))
            .unwrap()
            .iter()
            .map(|f| f.face_id)
            .collect();
        added.sort();
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (page, more) = c.list_faces(after, 7);
            seen.extend(page.iter().map(|f| f.face_id));
            if !more {
                break;
            }
            after = seen.last().copied();
        }
        assert_eq!(seen, added);
        for name in ["b", "c", "a"] {
            store.create(name, 0.0, "v1").unwrap();
        }
        let (page, more) = store.list(None, 2);
        assert_eq!(page.iter().map(|c| c.id()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(more);
        let (page, more) = store.list(Some("b"), 2);
        assert_eq!(page.iter().map(|c| c.id()).collect::<Vec<_>>(), ["c", "p"]);
        assert!(!more);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn search_finds_the_face_and_can_leave_it_out() {
        let dir = temp_dir();
        let store = Store::open(&dir).unwrap();
        let c = store.create("p", 0.0, "v1").unwrap();
        let faces = new_faces(4, 50);
        let target = faces[17].embedding.clone();
        let added = c.add_faces(faces).unwrap();
        let hits = c.search(&target, 3, -1.0, None);
        assert_eq!(hits[0].face.face_id, added[17].face_id);
        assert!((hits[0].cosine - 1.0).abs() < 1e-5);
        let hits = c.search(&target, 3, -1.0, Some(added[17].face_id));
        assert_eq!(hits.len(), 3);
        assert!(hits.iter().all(|h| h.face.face_id != added[17].face_id));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
