//! The last few image analyses, by the SHA-256 of the image's bytes.
//!
//! Rekognition's API makes a caller send the same image more than once: facegate's quality gate
//! calls `DetectFaces`, then `IndexFaces` (registration) or `SearchFacesByImage` (sign-in) on the
//! very same bytes. Detection and embedding are the engine's whole cost, and their result
//! depends only on the bytes and the models, so the second call reuses the first one's analysis.
//! Only successful analyses are kept; a handful suffice, since the repeat comes moments later.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::face::ImageAnalysis;

/// How many analyses are kept (each is a few faces' numbers: well under 10 KiB).
pub const CAPACITY: usize = 64;

/// The SHA-256 of an image's bytes.
pub type ImageDigest = [u8; 32];

pub fn digest(bytes: &[u8]) -> ImageDigest {
    Sha256::digest(bytes).into()
}

/// Most recently used first.
type Entries = VecDeque<(ImageDigest, Arc<ImageAnalysis>)>;

/// A small most-recently-used list of analyses, shared by every request.
#[derive(Clone, Default)]
pub struct RecentAnalyses {
    entries: Arc<Mutex<Entries>>,
}

impl RecentAnalyses {
    /// The analysis of the image with this digest, if it is among the recent ones.
    pub fn get(&self, digest: &ImageDigest) -> Option<Arc<ImageAnalysis>> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let at = entries.iter().position(|(d, _)| d == digest)?;
        // Move it to the front: it is the most recently used now.
        let entry = entries.remove(at)?;
        let analysis = entry.1.clone();
        entries.push_front(entry);
        Some(analysis)
    }

    /// Keeps `analysis` as the most recent, forgetting the least recent beyond [`CAPACITY`].
    pub fn put(&self, digest: ImageDigest, analysis: Arc<ImageAnalysis>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|(d, _)| *d != digest);
        entries.push_front((digest, analysis));
        entries.truncate(CAPACITY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis(width: u32) -> Arc<ImageAnalysis> {
        Arc::new(ImageAnalysis {
            width,
            height: 1,
            faces: Vec::new(),
        })
    }

    #[test]
    fn finds_what_was_put_by_its_bytes_only() {
        let recent = RecentAnalyses::default();
        recent.put(digest(b"one"), analysis(1));
        assert_eq!(recent.get(&digest(b"one")).map(|a| a.width), Some(1));
        assert!(recent.get(&digest(b"two")).is_none());
    }

    #[test]
    fn forgets_the_least_recently_used_beyond_capacity() {
        let recent = RecentAnalyses::default();
        for i in 0..CAPACITY as u32 {
            recent.put(digest(&i.to_le_bytes()), analysis(i));
        }
        // Using the oldest makes it the newest, so the next put evicts the second oldest.
        assert!(recent.get(&digest(&0u32.to_le_bytes())).is_some());
        recent.put(digest(b"new"), analysis(999));
        assert!(recent.get(&digest(&0u32.to_le_bytes())).is_some());
        assert!(recent.get(&digest(&1u32.to_le_bytes())).is_none());
        assert!(recent.get(&digest(b"new")).is_some());
    }
}
