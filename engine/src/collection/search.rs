//! Exact nearest-face search over every embedding of a collection.
//!
//! Embeddings live in one contiguous `f32` buffer (face `i` at `i * 128`), plus an int8 copy
//! with one scale per face. A search scans the int8 copy (a quarter of the memory traffic, and
//! integer dot products vectorise well), keeps every face whose approximate score could still
//! make the answer, then rescores those few with the exact `f32` vectors.
//!
//! The approximation never changes the answer: we know how far an int8 score can be from the
//! exact one (the quantisation error is measured per face and bounded by Cauchy-Schwarz), so a
//! face is only skipped when even its best possible exact score loses. Scores are cosines:
//! embeddings are unit length, so the dot product is the cosine.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::face::{EMBEDDING_DIM, Embedding};

/// Below this many faces one thread scans faster than two can be started.
const PARALLEL_FROM: usize = 32_768;
/// Slack for float rounding in the bound (the bound itself is exact arithmetic).
const ROUNDING_SLACK: f32 = 1e-5;

/// The embeddings of one collection, in insertion order (with holes filled by the last face
/// on removal).
#[derive(Debug, Default)]
pub struct Embeddings {
    exact: Vec<f32>,
    quantised: Vec<i8>,
    scales: Vec<f32>,
    /// The largest quantisation error (L2 norm of `exact - scale * quantised`) of any face ever
    /// added. Never lowered on removal: staying too large only costs a few more rescorings.
    max_error: f32,
}

/// One search result: the face's position and its exact cosine with the query.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    pub position: usize,
    pub cosine: f32,
}

impl Embeddings {
    pub fn len(&self) -> usize {
        self.scales.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }

    /// Room for `additional` more faces without reallocating (the benchmark builds 1M).
    pub fn reserve_exact(&mut self, additional: usize) {
        self.exact.reserve_exact(additional * EMBEDDING_DIM);
        self.quantised.reserve_exact(additional * EMBEDDING_DIM);
        self.scales.reserve_exact(additional);
    }

    pub fn push(&mut self, embedding: &Embedding) {
        let (quantised, scale, error) = quantise(&embedding.0);
        self.exact.extend_from_slice(&embedding.0);
        self.quantised.extend_from_slice(&quantised);
        self.scales.push(scale);
        self.max_error = self.max_error.max(error);
    }

    /// Remove the face at `position` by moving the last face into its place (like
    /// `Vec::swap_remove`); the caller updates whatever pointed at the last position.
    pub fn swap_remove(&mut self, position: usize) {
        let last = self.len() - 1;
        if position != last {
            let (dst, src) = (position * EMBEDDING_DIM, last * EMBEDDING_DIM);
            self.exact.copy_within(src..src + EMBEDDING_DIM, dst);
            self.quantised.copy_within(src..src + EMBEDDING_DIM, dst);
            self.scales[position] = self.scales[last];
        }
        self.exact.truncate(last * EMBEDDING_DIM);
        self.quantised.truncate(last * EMBEDDING_DIM);
        self.scales.truncate(last);
    }

    /// The exact embedding at `position`.
    pub fn get(&self, position: usize) -> Embedding {
        let mut out = [0f32; EMBEDDING_DIM];
        out.copy_from_slice(&self.exact[position * EMBEDDING_DIM..(position + 1) * EMBEDDING_DIM]);
        Embedding(out)
    }

    /// The (at most) `limit` faces most similar to `query` with a cosine of at least
    /// `min_cosine`, best first. Exact: the same answer as scoring every face in `f32`.
    pub fn search(&self, query: &Embedding, limit: usize, min_cosine: f32) -> Vec<Hit> {
        if limit == 0 || self.is_empty() {
            return Vec::new();
        }
        let (q8, q_scale, q_error) = quantise(&query.0);
        // |q.x - approx| <= |q^||e_x| + |e_q||x^| + |e_q||e_x|, with |q^| <= 1 + |e_q| and
        // |x^| <= 1 + |e_x| for unit q and x.
        let e = self.max_error;
        let bound = (1.0 + q_error) * e + q_error * (1.0 + e) + q_error * e + ROUNDING_SLACK;
        let scan = Scan {
            q8: &q8,
            q_scale,
            bound,
            limit,
            min_cosine,
        };

        let n = self.len();
        let candidates = if n >= PARALLEL_FROM {
            let half = n / 2;
            let (a, b) = std::thread::scope(|s| {
                let second = s.spawn(|| scan.run(self, half, n));
                let first = scan.run(self, 0, half);
                // A panic in the scan is a bug in this file; surface it as one.
                (
                    first,
                    second
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                )
            });
            a.merge(b, limit)
        } else {
            scan.run(self, 0, n)
        };

        // Rescore exactly only what could still be in the answer.
        let cutoff = candidates.cutoff(&scan);
        let mut hits: Vec<Hit> = candidates
            .kept
            .into_iter()
            .filter(|&(_, approx)| approx >= cutoff)
            .map(|(position, _)| Hit {
                position,
                cosine: dot(&query.0, self.exact_at(position)),
            })
            .filter(|hit| hit.cosine >= min_cosine)
            .collect();
        hits.sort_by(|a, b| {
            b.cosine
                .total_cmp(&a.cosine)
                .then(a.position.cmp(&b.position))
        });
        hits.truncate(limit);
        hits
    }

    fn exact_at(&self, position: usize) -> &[f32] {
        &self.exact[position * EMBEDDING_DIM..(position + 1) * EMBEDDING_DIM]
    }
}

/// The fixed inputs of one scan.
struct Scan<'a> {
    q8: &'a [i8; EMBEDDING_DIM],
    q_scale: f32,
    bound: f32,
    limit: usize,
    min_cosine: f32,
}

/// What a scan over a range of faces kept.
struct Candidates {
    /// The `limit` best approximate scores seen (a min-heap).
    best: BinaryHeap<Reverse<Score>>,
    /// Every face that could still be in the answer when it was seen: (position, approx).
    kept: Vec<(usize, f32)>,
}

impl Scan<'_> {
    /// Faces whose approximate score is below this cannot be in the answer: their exact score
    /// is under the threshold, or under the `limit`-th best exact score.
    fn cutoff_for(&self, best: &BinaryHeap<Reverse<Score>>) -> f32 {
        let by_threshold = self.min_cosine - self.bound;
        if best.len() < self.limit {
            return by_threshold;
        }
        let kth = best
            .peek()
            .map_or(f32::NEG_INFINITY, |Reverse(Score(s))| *s);
        by_threshold.max(kth - 2.0 * self.bound)
    }

    fn run(&self, embeddings: &Embeddings, from: usize, to: usize) -> Candidates {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { self.run_avx2(embeddings, from, to) };
        }
        self.run_portable(embeddings, from, to)
    }

    /// The same loop compiled for AVX2, where the int8 dot product is several times faster.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn run_avx2(&self, embeddings: &Embeddings, from: usize, to: usize) -> Candidates {
        self.run_portable(embeddings, from, to)
    }

    #[inline(always)]
    fn run_portable(&self, embeddings: &Embeddings, from: usize, to: usize) -> Candidates {
        let mut best = BinaryHeap::with_capacity(self.limit.min(4096) + 1);
        let mut kept = Vec::new();
        let mut cutoff = self.cutoff_for(&best);
        let rows = embeddings.quantised[from * EMBEDDING_DIM..to * EMBEDDING_DIM]
            .chunks_exact(EMBEDDING_DIM);
        for ((position, row), scale) in (from..to).zip(rows).zip(&embeddings.scales[from..to]) {
            let row: &[i8; EMBEDDING_DIM] = row.try_into().unwrap_or(&[0; EMBEDDING_DIM]);
            let approx = dot_i8(self.q8, row) as f32 * self.q_scale * scale;
            if approx < cutoff {
                continue;
            }
            kept.push((position, approx));
            best.push(Reverse(Score(approx)));
            if best.len() > self.limit {
                best.pop();
            }
            cutoff = self.cutoff_for(&best);
            // Keep memory bounded when many faces pass early: drop what no longer can.
            if kept.len() > 4 * self.limit + 1024 {
                kept.retain(|&(_, a)| a >= cutoff);
            }
        }
        Candidates { best, kept }
    }
}

impl Candidates {
    fn merge(mut self, other: Candidates, limit: usize) -> Candidates {
        self.kept.extend(other.kept);
        for score in other.best {
            self.best.push(score);
            if self.best.len() > limit {
                self.best.pop();
            }
        }
        self
    }

    fn cutoff(&self, scan: &Scan) -> f32 {
        scan.cutoff_for(&self.best)
    }
}

/// A float with a total order, for the heap.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Score(f32);

impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Symmetric int8 quantisation with one scale per vector: returns the int8 vector, its scale
/// and the L2 norm of what was lost.
fn quantise(v: &[f32; EMBEDDING_DIM]) -> ([i8; EMBEDDING_DIM], f32, f32) {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 && max.is_finite() {
        max / 127.0
    } else {
        1.0
    };
    let mut out = [0i8; EMBEDDING_DIM];
    let mut lost = 0f32;
    for (o, x) in out.iter_mut().zip(v) {
        let q = (x / scale).round().clamp(-127.0, 127.0);
        *o = q as i8;
        let err = x - q * scale;
        lost += err * err;
    }
    (out, scale, lost.sqrt())
}

#[inline(always)]
fn dot_i8(a: &[i8; EMBEDDING_DIM], b: &[i8; EMBEDDING_DIM]) -> i32 {
    // i16 products summed in i32: LLVM turns this into pmaddwd, 16 lanes at a time on AVX2.
    // Wrapping operations only to keep debug builds' overflow checks out of the loop (they stop
    // vectorisation); nothing can overflow: |a.b| <= 128 * 127 * 127 < 2^31.
    let mut acc = 0i32;
    for (x, y) in a.iter().zip(b) {
        acc = acc.wrapping_add(i32::from(i16::from(*x).wrapping_mul(i16::from(*y))));
    }
    acc
}

/// The exact score: dot product of two unit vectors.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Deterministic random unit vectors, for tests and the benchmark (no `rand` dependency).
pub fn random_unit_vectors(seed: u64) -> impl Iterator<Item = Embedding> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        // xorshift64*: plenty for synthetic data.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    };
    std::iter::from_fn(move || {
        let mut v = [0f32; EMBEDDING_DIM];
        for pair in v.chunks_exact_mut(2) {
            // Box-Muller: Gaussian components make the direction uniform on the sphere.
            let (u1, u2) = (next().max(f64::MIN_POSITIVE), next());
            let r = (-2.0 * u1.ln()).sqrt();
            let t = std::f64::consts::TAU * u2;
            pair[0] = (r * t.cos()) as f32;
            pair[1] = (r * t.sin()) as f32;
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        Some(Embedding(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference answer: score everything in f32, sort, filter.
    fn brute_force(
        all: &[Embedding],
        query: &Embedding,
        limit: usize,
        min_cosine: f32,
    ) -> Vec<Hit> {
        let mut hits: Vec<Hit> = all
            .iter()
            .enumerate()
            .map(|(position, e)| Hit {
                position,
                cosine: dot(&query.0, &e.0),
            })
            .filter(|h| h.cosine >= min_cosine)
            .collect();
        hits.sort_by(|a, b| {
            b.cosine
                .total_cmp(&a.cosine)
                .then(a.position.cmp(&b.position))
        });
        hits.truncate(limit);
        hits
    }

    fn build(all: &[Embedding]) -> Embeddings {
        let mut e = Embeddings::default();
        all.iter().for_each(|v| e.push(v));
        e
    }

    /// A vector at a given cosine from `base`: near-duplicates make the int8 pass ambiguous.
    fn near(base: &Embedding, noise: &Embedding, amount: f32) -> Embedding {
        let mut v = [0f32; EMBEDDING_DIM];
        for ((v, b), n) in v.iter_mut().zip(&base.0).zip(&noise.0) {
            *v = b + amount * n;
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        Embedding(v)
    }

    #[test]
    fn top_k_matches_brute_force_on_random_and_near_duplicate_faces() {
        let mut rng = random_unit_vectors(1);
        let query = rng.next().unwrap();
        let mut all: Vec<Embedding> = rng.by_ref().take(3_000).collect();
        // Many faces nearly tied with each other close to the query.
        for i in 0..200 {
            let noise = rng.next().unwrap();
            all.push(near(&query, &noise, 0.5 + (i % 7) as f32 * 0.0001));
        }
        let index = build(&all);
        for (limit, min_cosine) in [
            (1, -1.0),
            (10, -1.0),
            (50, 0.0),
            (500, 0.5),
            (5000, -1.0),
            (10, 0.99),
        ] {
            let got = index.search(&query, limit, min_cosine);
            let want = brute_force(&all, &query, limit, min_cosine);
            assert_eq!(got.len(), want.len(), "limit {limit} min {min_cosine}");
            for (g, w) in got.iter().zip(&want) {
                assert!((g.cosine - w.cosine).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn the_two_thread_scan_gives_the_same_answer() {
        let all: Vec<Embedding> = random_unit_vectors(2).take(PARALLEL_FROM + 1_000).collect();
        let index = build(&all);
        let query = &all[PARALLEL_FROM + 500];
        let got = index.search(query, 20, -1.0);
        assert_eq!(got, brute_force(&all, query, 20, -1.0));
        assert_eq!(got[0].position, PARALLEL_FROM + 500);
    }

    #[test]
    fn swap_remove_moves_the_last_face_into_the_hole() {
        let all: Vec<Embedding> = random_unit_vectors(3).take(5).collect();
        let mut index = build(&all);
        index.swap_remove(1);
        assert_eq!(index.len(), 4);
        assert_eq!(index.get(1), all[4]);
        let hits = index.search(&all[4], 1, -1.0);
        assert_eq!(hits[0].position, 1);
        index.swap_remove(3);
        index.swap_remove(0);
        assert_eq!(index.len(), 2);
        assert!(index.search(&all[0], 5, 0.999).is_empty());
    }

    #[test]
    fn an_empty_index_or_zero_limit_finds_nothing() {
        let query = random_unit_vectors(4).next().unwrap();
        assert!(Embeddings::default().search(&query, 10, -1.0).is_empty());
        assert!(
            build(std::slice::from_ref(&query))
                .search(&query, 0, -1.0)
                .is_empty()
        );
    }

    #[test]
    fn quantisation_error_is_small() {
        for v in random_unit_vectors(5).take(100) {
            let (_, _, error) = quantise(&v.0);
            assert!(error < 0.02, "{error}");
        }
    }
}
