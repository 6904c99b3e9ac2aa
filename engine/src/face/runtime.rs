//! ONNX Runtime plumbing: load the shared library once per process, check the model files
//! against their pinned sha256, and keep a small pool of sessions per model.
//!
//! `ort` (2.0.0-rc.15) runs a session through `&mut self`, so one session serves one image at a
//! time. A [`Pool`] lends `workers` sessions out: that makes the models `Send + Sync` and
//! lets that many images be analysed at once. Each session gets one intra-op thread, because
//! the engine parallelises across requests and, when a session is free, across the detector
//! runs of one image (`detect::detect_symmetric`), not inside one inference. The sessions of a
//! pool share one copy of their pre-packed weights.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use ort::environment::Environment;
use ort::ep::CPU;
use ort::logging::LogLevel;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, PrepackedWeights};
use sha2::{Digest, Sha256};

use super::ModelError;

/// A model file the engine needs, pinned by content (the same values as `scripts/setup.sh`).
pub(crate) struct ModelFile {
    pub name: &'static str,
    pub sha256: &'static str,
}

pub(crate) const DETECTOR_FILE: ModelFile = ModelFile {
    name: "face_detection_yunet_2023mar.onnx",
    sha256: "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
};

pub(crate) const EMBEDDER_FILE: ModelFile = ModelFile {
    name: "face_recognition_sface_2021dec.onnx",
    sha256: "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
};

/// Where `scripts/setup.sh` leaves the ONNX Runtime library, relative to the checkout.
const VENV_SITE_PACKAGES: &str = ".venv/lib";

/// The first `libonnxruntime.so.*` under `<root>/.venv/lib/python3*/site-packages/onnxruntime/capi/`,
/// which is where `scripts/setup.sh` installs the `onnxruntime` wheel.
pub fn find_onnxruntime(root: &Path) -> Option<PathBuf> {
    let lib = root.join(VENV_SITE_PACKAGES);
    let mut pythons: Vec<PathBuf> = std::fs::read_dir(&lib)
        .ok()?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("python3"))
        .map(|entry| entry.path().join("site-packages/onnxruntime/capi"))
        .collect();
    // Deterministic choice when several Python versions are present.
    pythons.sort();
    pythons.into_iter().find_map(|capi| {
        let mut libraries: Vec<PathBuf> = std::fs::read_dir(&capi)
            .ok()?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with("libonnxruntime.so."))
            })
            .collect();
        libraries.sort();
        libraries.pop()
    })
}

/// The process-wide ONNX Runtime environment. `ort` allows one per process, and the library
/// can only be loaded once, so the first successful (or failed) initialisation is kept.
static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// Load ONNX Runtime from `dylib` (or the one in ./.venv) the first time; later calls reuse
/// that environment whatever path they pass.
pub(crate) fn environment(dylib: Option<&Path>) -> Result<&'static Environment, ModelError> {
    ENVIRONMENT
        .get_or_init(|| {
            let path = match dylib {
                Some(path) => path.to_path_buf(),
                None => find_onnxruntime(Path::new(".")).ok_or_else(|| {
                    "no libonnxruntime.so.* under ./.venv/lib/python3*/site-packages/onnxruntime/capi/: \
                     run scripts/setup.sh, or set ORT_DYLIB_PATH (--ort-dylib-path)"
                        .to_string()
                })?,
            };
            if !path.is_file() {
                return Err(format!(
                    "{} does not exist: run scripts/setup.sh, or point ORT_DYLIB_PATH at libonnxruntime.so",
                    path.display()
                ));
            }
            ort::init_from(&path)
                .map_err(|e| format!("loading {}: {e}", path.display()))?
                .with_name("facegate-engine")
                .with_telemetry(false)
                .build()
                .map_err(|e| format!("creating the environment: {e}"))
        })
        .as_ref()
        .map_err(|reason| ModelError::Runtime(reason.clone()))
}

/// Read a model file and check it is the pinned one, so a truncated download or a different
/// model never silently changes what a similarity means.
pub(crate) fn read_checked(models_dir: &Path, model: &ModelFile) -> Result<Vec<u8>, ModelError> {
    let path = models_dir.join(model.name);
    let bytes = std::fs::read(&path).map_err(|e| ModelError::File {
        path: path.clone(),
        reason: format!("{e} (run scripts/setup.sh to fetch the models)"),
    })?;
    let digest = hex::encode(Sha256::digest(&bytes));
    if digest != model.sha256 {
        return Err(ModelError::File {
            path,
            reason: format!(
                "sha256 {digest} is not the pinned {} (run scripts/setup.sh again)",
                model.sha256
            ),
        });
    }
    Ok(bytes)
}

/// `count` identical sessions of `model` (at least one), sharing one copy of their pre-packed
/// weights.
pub(crate) fn sessions(
    environment: &Environment,
    model: &ModelFile,
    bytes: &[u8],
    count: usize,
) -> Result<Vec<Session>, ModelError> {
    let fail = |e: &dyn std::fmt::Display| ModelError::Runtime(format!("{}: {e}", model.name));
    let prepacked = PrepackedWeights::new();
    (0..count.max(1))
        .map(|_| {
            Session::builder(environment)
                .map_err(|e| fail(&e))?
                .with_intra_threads(1)
                .map_err(|e| fail(&e))?
                .with_inter_threads(1)
                .map_err(|e| fail(&e))?
                .with_optimization_level(GraphOptimizationLevel::All)
                .map_err(|e| fail(&e))?
                .with_prepacked_weights(&prepacked)
                .map_err(|e| fail(&e))?
                // Each session keeps its own arena, grown to its largest run and reused:
                // memory bounded by the sessions (32 concurrent 1920x1080 requests: 545 MiB
                // peak, and faster). Without it every run's tensors went through malloc from
                // whichever request thread ran it, and glibc kept them: 1.4 GiB and growing.
                .with_execution_providers([CPU::default().with_arena_allocator(true).build()])
                .map_err(|e| fail(&e))?
                // Errors only: ONNX Runtime's warnings are about the models' own export
                // quirks, and noise in the engine's log.
                .with_log_level(LogLevel::Error)
                .map_err(|e| fail(&e))?
                .commit_from_memory(bytes)
                .map_err(|e| fail(&e))
        })
        .collect::<Result<Vec<_>, _>>()
}

/// Sessions (with their buffers) lent to one thread at a time. Any free one serves any caller,
/// so a caller waits only while every one is lent (a mutex per session, waited on by whoever
/// picked it, left one session idle while callers queued on the other).
pub(crate) struct Pool<T> {
    free: Mutex<Vec<T>>,
    returned: Condvar,
    count: usize,
}

/// An item lent by a [`Pool`], back in the pool when dropped (a panic included).
pub(crate) struct Lent<'a, T> {
    pool: &'a Pool<T>,
    item: Option<T>,
}

impl<T> Pool<T> {
    pub fn of(items: Vec<T>) -> Self {
        Self {
            count: items.len(),
            free: Mutex::new(items),
            returned: Condvar::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    /// The free items. A panic while the list was held cannot leave it half-written (a push
    /// or a pop), so a poisoned lock is still usable.
    fn free(&self) -> MutexGuard<'_, Vec<T>> {
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A free item, if one is free right now.
    pub fn try_acquire(&self) -> Option<Lent<'_, T>> {
        let item = self.free().pop()?;
        Some(Lent {
            pool: self,
            item: Some(item),
        })
    }

    /// A free item, waiting for one if every item is lent.
    pub fn acquire(&self) -> Lent<'_, T> {
        let mut free = self.free();
        loop {
            if let Some(item) = free.pop() {
                return Lent {
                    pool: self,
                    item: Some(item),
                };
            }
            free = self
                .returned
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl<T> std::ops::Deref for Lent<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // Taken only in `drop`.
        self.item.as_ref().expect("a lent item")
    }
}

impl<T> std::ops::DerefMut for Lent<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.item.as_mut().expect("a lent item")
    }
}

impl<T> Drop for Lent<'_, T> {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            self.pool.free().push(item);
            self.pool.returned.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_model_file_says_to_run_setup() {
        let dir = std::env::temp_dir().join("facegate-no-models-here");
        let err = read_checked(&dir, &DETECTOR_FILE).unwrap_err();
        assert!(err.to_string().contains("scripts/setup.sh"), "{err}");
    }

    #[test]
    fn wrong_model_bytes_are_refused() {
        let dir = std::env::temp_dir().join(format!("facegate-bad-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(DETECTOR_FILE.name), b"not a model").unwrap();
        let err = read_checked(&dir, &DETECTOR_FILE).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.to_string().contains("sha256"), "{err}");
    }

    #[test]
    fn any_returned_item_serves_a_waiting_caller() {
        let pool = Pool::of(vec![1, 2]);
        let (first, second) = (pool.acquire(), pool.acquire());
        assert!(pool.try_acquire().is_none(), "both are lent");
        std::thread::scope(|scope| {
            let waiting = scope.spawn(|| *pool.acquire());
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!waiting.is_finished(), "it waits while every item is lent");
            // Whichever is returned serves it (not only the one it first looked at).
            let returned = *second;
            drop(second);
            assert_eq!(waiting.join().unwrap(), returned);
        });
        drop(first);
        assert_eq!(pool.len(), 2);
        let both: Vec<_> = [pool.try_acquire(), pool.try_acquire()]
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(both.len(), 2, "every item came back");
    }

    #[test]
    fn no_venv_means_no_library() {
        assert_eq!(find_onnxruntime(Path::new("/nonexistent")), None);
    }
}
