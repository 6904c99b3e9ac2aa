//! What the engine's integration tests share: the workspace root and the face models, loaded
//! once per test binary from the CLI's defaults (tests run in the crate's folder).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use facegate_engine::face::{self, FaceModels, ModelSettings};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the engine crate sits in the workspace")
        .to_path_buf()
}

pub fn models() -> &'static FaceModels {
    static MODELS: OnceLock<FaceModels> = OnceLock::new();
    MODELS.get_or_init(|| {
        let root = workspace_root();
        let settings = ModelSettings {
            models_dir: root.join(".facegate/models"),
            ort_dylib_path: face::find_onnxruntime(&root),
            workers: 2,
        };
        FaceModels::load(&settings).expect("models load (run scripts/setup.sh first)")
    })
}
