//! The engine edits the pinned embedder in memory before running it (`face::model_edit`): its
//! weights stop being graph inputs, and its PRelu activations become the elementwise ops they
//! equal. Both edits claim to keep the arithmetic. This runs the model as published and as
//! edited through ONNX Runtime, on real faces, and holds the edited one to those outputs.
//!
//! Its own test binary, because it starts ONNX Runtime itself (once per process).

use facegate_engine::face::align::{ALIGNED_SIDE, AlignedFace};
use facegate_engine::face::{embed, find_onnxruntime, model_edit};
use image::imageops::FilterType;
use ort::session::Session;
use ort::value::TensorRef;

const EMBEDDER: &str = "face_recognition_sface_2021dec.onnx";

/// SFace's raw 128 outputs for each face, through the model `bytes`.
fn outputs(
    environment: &ort::environment::Environment,
    bytes: &[u8],
    faces: &[AlignedFace],
) -> Vec<Vec<f32>> {
    let mut session = Session::builder(environment)
        .unwrap()
        .with_intra_threads(1)
        .unwrap()
        .commit_from_memory(bytes)
        .expect("the model loads");
    faces
        .iter()
        .map(|face| {
            let blob = embed::input_blob(face);
            let shape = [1usize, 3, ALIGNED_SIDE, ALIGNED_SIDE];
            let tensor = TensorRef::from_array_view((shape, &blob[..])).unwrap();
            let out = session.run(ort::inputs![tensor]).unwrap();
            out[0].try_extract_tensor::<f32>().unwrap().1.to_vec()
        })
        .collect()
}

#[test]
fn the_edited_embedder_computes_what_the_published_one_does() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the engine crate sits in the workspace")
        .to_path_buf();
    let dylib = find_onnxruntime(&root).expect("ONNX Runtime in .venv (run scripts/setup.sh)");
    let environment = ort::init_from(&dylib).unwrap().build().unwrap();
    let published = std::fs::read(root.join(".facegate/models").join(EMBEDDER))
        .expect("the models (run scripts/setup.sh)");

    // Every labelled photo, squeezed to the crop size: real skin, eyes and edges, which is all
    // the arithmetic needs (alignment is not what is under test).
    let mut faces = Vec::new();
    for entry in std::fs::read_dir(root.join("tests/fixtures/faces")).unwrap() {
        let path = entry.unwrap().path();
        let Ok(photo) = image::open(&path) else {
            continue;
        };
        let side = ALIGNED_SIDE as u32;
        let pixels = photo
            .resize_exact(side, side, FilterType::Triangle)
            .to_rgb8()
            .into_raw();
        faces.push(AlignedFace { pixels });
    }
    assert!(faces.len() >= 10, "{} photos", faces.len());

    let constants = model_edit::strip_initializer_inputs(&published).unwrap();
    let (elementwise, rewritten) = model_edit::prelu_as_elementwise(&constants).unwrap();
    assert_eq!(rewritten, 27, "SFace has 27 PRelu layers");

    let reference = outputs(&environment, &published, &faces);
    let largest = |a: &[Vec<f32>], b: &[Vec<f32>]| {
        a.iter()
            .flatten()
            .zip(b.iter().flatten())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    // Folding BatchNorm into the convolutions (what constant weights allow) reorders sums.
    let folded = outputs(&environment, &constants, &faces);
    let folding = largest(&reference, &folded);
    println!("weights as constants: largest output difference {folding:e}");
    assert!(folding < 1e-4, "{folding}");
    // The PRelu rewrite changes no arithmetic at all.
    let rewritten = outputs(&environment, &elementwise, &faces);
    let prelu = largest(&folded, &rewritten);
    println!("PRelu as Max/Min/Relu: largest output difference {prelu:e}");
    assert_eq!(prelu, 0.0, "the PRelu rewrite changed the embeddings");
}
