//! Embedding: SFace (2021dec) turns an aligned 112x112 face into 128 numbers; two photos of
//! one person give nearby vectors.
//!
//! The input is the crop as planar R, G, B floats in 0-255 (OpenCV's `FaceRecognizerSF::feature`
//! builds the same blob with `swapRB` from its BGR image). The output is L2-normalised here, so
//! comparing two faces is one dot product: their cosine.

use ort::session::Session;
use ort::value::TensorRef;

use super::align::{ALIGNED_SIDE, AlignedFace};
use super::{EMBEDDING_DIM, Embedding};

/// Why embedding failed: always the runtime, never the photo.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("running SFace: {0}")]
    Run(#[from] ort::Error),
    #[error("SFace returned {0} values, expected {EMBEDDING_DIM}")]
    WrongLength(usize),
    #[error("SFace returned a zero or non-finite vector")]
    Degenerate,
}

/// The SFace input blob for one aligned face.
pub fn input_blob(face: &AlignedFace) -> Vec<f32> {
    let mut blob = Vec::new();
    fill_blob(face, &mut blob);
    blob
}

/// Write the blob of `face` into `blob` (reused between calls: no allocation once sized).
/// Every element is overwritten, so the previous face's values never leak into this one.
fn fill_blob(face: &AlignedFace, blob: &mut Vec<f32>) {
    let plane = ALIGNED_SIDE * ALIGNED_SIDE;
    blob.resize(3 * plane, 0.0);
    for (i, rgb) in face.pixels.chunks_exact(3).enumerate() {
        for (channel, &value) in rgb.iter().enumerate() {
            blob[channel * plane + i] = f32::from(value);
        }
    }
}

/// An SFace session and its input blob, reused by its next embedding (the blob belongs to the
/// session, like the detector's inputs, not to whichever thread runs it).
pub struct Embedder {
    session: Session,
    blob: Vec<f32>,
}

impl Embedder {
    pub fn new(session: Session) -> Self {
        Self {
            session,
            blob: Vec::new(),
        }
    }
}

/// Embed one aligned face.
pub fn embed(embedder: &mut Embedder, face: &AlignedFace) -> Result<Embedding, EmbedError> {
    let Embedder { session, blob } = embedder;
    fill_blob(face, blob);
    let shape = [1usize, 3, ALIGNED_SIDE, ALIGNED_SIDE];
    let tensor = TensorRef::from_array_view((shape, &blob[..]))?;
    let outputs = session.run(ort::inputs![tensor])?;
    let (_, values) = outputs[0].try_extract_tensor::<f32>()?;
    Embedding::normalised(values)
}

impl Embedding {
    /// Scale `values` to unit length.
    pub fn normalised(values: &[f32]) -> Result<Embedding, EmbedError> {
        let vector: [f32; EMBEDDING_DIM] = values
            .try_into()
            .map_err(|_| EmbedError::WrongLength(values.len()))?;
        let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
        if !norm.is_finite() || norm <= f32::EPSILON {
            return Err(EmbedError::Degenerate);
        }
        Ok(Embedding(vector.map(|v| v / norm)))
    }

    /// Cosine of the angle between two embeddings, -1 to 1 (their dot product, as both are
    /// unit length). Higher means more alike.
    pub fn cosine(&self, other: &Embedding) -> f32 {
        cosine(self, other)
    }
}

/// Cosine of the angle between two unit embeddings (see [`Embedding::cosine`]).
pub fn cosine(a: &Embedding, b: &Embedding) -> f32 {
    a.0.iter()
        .zip(&b.0)
        .map(|(x, y)| x * y)
        .sum::<f32>()
        .clamp(-1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(index: usize) -> Embedding {
        let mut v = [0.0; EMBEDDING_DIM];
        v[index] = 1.0;
        Embedding(v)
    }

    #[test]
    fn normalises_to_unit_length() {
        let mut raw = vec![0.0; EMBEDDING_DIM];
        raw[0] = 3.0;
        raw[1] = 4.0;
        let e = Embedding::normalised(&raw).unwrap();
        assert_eq!((e.0[0], e.0[1]), (0.6, 0.8));
        assert!((e.cosine(&e) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn refuses_wrong_length_and_zero_vectors() {
        assert!(matches!(
            Embedding::normalised(&[1.0; 3]),
            Err(EmbedError::WrongLength(3))
        ));
        assert!(matches!(
            Embedding::normalised(&[0.0; EMBEDDING_DIM]),
            Err(EmbedError::Degenerate)
        ));
        let mut nan = [0.0; EMBEDDING_DIM];
        nan[5] = f32::NAN;
        assert!(matches!(
            Embedding::normalised(&nan),
            Err(EmbedError::Degenerate)
        ));
    }

    #[test]
    fn cosine_of_orthogonal_and_opposite_vectors() {
        assert_eq!(cosine(&unit(0), &unit(1)), 0.0);
        let minus = Embedding(unit(0).0.map(|v| -v));
        assert_eq!(cosine(&unit(0), &minus), -1.0);
    }

    #[test]
    fn blob_is_planar_rgb() {
        let mut pixels = vec![0u8; ALIGNED_SIDE * ALIGNED_SIDE * 3];
        pixels[..3].copy_from_slice(&[1, 2, 3]);
        let blob = input_blob(&AlignedFace { pixels });
        let plane = ALIGNED_SIDE * ALIGNED_SIDE;
        assert_eq!((blob[0], blob[plane], blob[2 * plane]), (1.0, 2.0, 3.0));
    }
}
