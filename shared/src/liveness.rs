//! Active liveness, the pure part: the head-pose steps a challenge asks and their draw, the
//! pose each step accepts, the foreshortening a live head turn shows, and the frame
//! fingerprints that catch a replayed or re-encoded frame.
//!
//! Why this stops a photo: a flat picture turned or tilted in front of the camera changes by a
//! perspective warp, which keeps the nose where it sits between the eyes and the mouth, so the
//! yaw read from the landmarks stays near the picture's own (measured in `tests/liveness.rs`).
//! A live head turning moves the nose off the face's midline. What it does not stop: a video
//! of the user turning the asked way, replayed or injected as the camera; a 3D mask.
//!
//! Two users: the verifier's `active` policy (frames in S3, checked through Rekognition's
//! API) and the engine's local stand-in for Rekognition Face Liveness (frames uploaded to the
//! engine, checked in-process), so both decide with the same steps and thresholds.

use std::fmt;
use std::str::FromStr;

/// One pose the person is asked for. Left and right are as the camera sees the face: `left`
/// means the nose points to the image's left edge (Rekognition's yaw is negative).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    Centre,
    Left,
    Right,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Centre => "centre",
            Step::Left => "left",
            Step::Right => "right",
        }
    }

    /// Whether a face at this yaw and pitch (degrees, Rekognition's convention) shows the
    /// step. The bounds come from the head-turn clip (`tests/fixtures/faces/clip/`): a live
    /// turn reaches 30-40 degrees; frontal frames read within a few degrees; the turned
    /// frames a person holds for a moment read past 20. A gap between the two bounds means a
    /// half-turned frame proves nothing either way and is refused.
    pub fn shown_by(self, yaw: f32, pitch: f32) -> bool {
        if pitch.abs() > MAX_PITCH_DEGREES {
            return false;
        }
        match self {
            Step::Centre => yaw.abs() <= CENTRE_MAX_YAW_DEGREES,
            Step::Left => yaw <= -TURN_MIN_YAW_DEGREES,
            Step::Right => yaw >= TURN_MIN_YAW_DEGREES,
        }
    }
}

/// How much narrower a turned face may look than `cos(yaw)` predicts, relative to the
/// frontal frame ([`foreshortening_fits`]). A head turning by `yaw` narrows the eye line by
/// about `cos(yaw)` against the eye-to-mouth height, measured on the clip within 0.035 of
/// it. A flat photo tilted far enough that its landmarks read a turn (50-60 degrees) narrows
/// everything: 0.11 to 0.21 below `cos(yaw)` in the measurements (`tests/liveness.rs`).
pub const FORESHORTENING_TOLERANCE: f32 = 0.07;

/// The eye line's length over the distance from its middle to the mouth's middle, in pixels:
/// `landmarks` are Rekognition's (normalised to the image) eyeLeft, eyeRight, mouthLeft,
/// mouthRight; `width` and `height` the image's.
pub fn proportion(landmarks: [(f32, f32); 4], width: u32, height: u32) -> Option<f32> {
    let (w, h) = (width as f32, height as f32);
    let [el, er, ml, mr] = landmarks.map(|(x, y)| (x * w, y * h));
    let eye_line = (er.0 - el.0).hypot(er.1 - el.1);
    let eyes = ((el.0 + er.0) / 2.0, (el.1 + er.1) / 2.0);
    let mouth = ((ml.0 + mr.0) / 2.0, (ml.1 + mr.1) / 2.0);
    let height = (mouth.0 - eyes.0).hypot(mouth.1 - eyes.1);
    (height > 0.0 && eye_line.is_finite()).then(|| eye_line / height)
}

/// Whether a turned frame's [`proportion`] against the frontal frame's is what a head turned
/// by `yaw` shows, rather than a flat picture tilted until its landmarks read a turn.
pub fn foreshortening_fits(turned: f32, frontal: f32, yaw: f32) -> bool {
    frontal > 0.0 && turned / frontal >= yaw.to_radians().cos() - FORESHORTENING_TOLERANCE
}

/// A frontal frame reads at most this far from 0 in yaw.
pub const CENTRE_MAX_YAW_DEGREES: f32 = 10.0;
/// A turned frame reads at least this far from 0, on the asked side.
pub const TURN_MIN_YAW_DEGREES: f32 = 18.0;
/// Any frame: a head tipped further than this up or down is not a clean step.
pub const MAX_PITCH_DEGREES: f32 = 30.0;

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A step name that is not one of `centre`, `left`, `right`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a liveness step (centre, left, right)")]
pub struct StepError(String);

impl FromStr for Step {
    type Err = StepError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "centre" => Ok(Step::Centre),
            "left" => Ok(Step::Left),
            "right" => Ok(Step::Right),
            other => Err(StepError(other.into())),
        }
    }
}

/// The steps of one challenge: three, at least one of them frontal (the frame matched at the
/// authentication threshold) and one turned, no step twice in a row.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sequence(Vec<Step>);

/// How many frames a challenge asks for.
pub const STEPS: usize = 3;

impl Sequence {
    /// Every sequence a challenge may ask for.
    pub fn all() -> Vec<Sequence> {
        use Step::*;
        let steps = [Centre, Left, Right];
        let mut all = Vec::new();
        for a in steps {
            for b in steps {
                for c in steps {
                    if let Ok(sequence) = Sequence::new(vec![a, b, c]) {
                        all.push(sequence);
                    }
                }
            }
        }
        all
    }

    /// Parses, refusing what no challenge would ask.
    pub fn new(steps: Vec<Step>) -> Result<Self, SequenceError> {
        if steps.len() != STEPS {
            return Err(SequenceError::Length(steps.len()));
        }
        if steps.windows(2).any(|w| w[0] == w[1]) {
            return Err(SequenceError::Repeated);
        }
        if !steps.contains(&Step::Centre) || steps.iter().all(|s| *s == Step::Centre) {
            return Err(SequenceError::NoCentreOrTurn);
        }
        Ok(Self(steps))
    }

    /// A random sequence, never `previous` (the user's last challenge), so a recording of
    /// the last sign-in does not fit the next one. `random` is fresh entropy (a UUID v4).
    pub fn draw(previous: Option<&Sequence>, random: u64) -> Sequence {
        let candidates: Vec<Sequence> = Sequence::all()
            .into_iter()
            .filter(|s| Some(s) != previous)
            .collect();
        let index = (random % candidates.len() as u64) as usize;
        candidates[index].clone()
    }

    pub fn steps(&self) -> &[Step] {
        &self.0
    }

    /// The index of the frame matched at the authentication threshold: the first frontal one.
    pub fn frontal(&self) -> usize {
        self.0
            .iter()
            .position(|s| *s == Step::Centre)
            .unwrap_or_default()
    }
}

/// `centre,left,right`: the form in challenge parameters and the challenge record.
impl fmt::Display for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|s| s.as_str()).collect();
        f.write_str(&names.join(","))
    }
}

/// Why a text is not a sequence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("a liveness sequence has {STEPS} steps, not {0}")]
    Length(usize),
    #[error("a liveness sequence never asks for the same step twice in a row")]
    Repeated,
    #[error("a liveness sequence holds a frontal step and a turn")]
    NoCentreOrTurn,
    #[error(transparent)]
    Step(#[from] StepError),
}

impl FromStr for Sequence {
    type Err = SequenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let steps = s
            .split(',')
            .map(Step::from_str)
            .collect::<Result<Vec<_>, _>>()?;
        Sequence::new(steps)
    }
}

/// A frame's look, small enough to keep: the image as 32x32 grey levels. Two frames whose
/// fingerprints differ by less than [`NEAR_DUPLICATE_MEAN_DIFFERENCE`] on average are one
/// picture (the same bytes, or a re-encode, a resize or a slight brightness change of it);
/// a live head between two steps moves far more than that.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint(Vec<u8>);

/// Side of the fingerprint's square.
pub const FINGERPRINT_SIDE: u32 = 32;
/// Mean absolute grey-level difference (0-255) below which two frames are one picture.
/// Measured on the head-turn clip: a frame re-encoded at JPEG quality 70 differs from itself
/// by 0.12-0.18; neighbouring frames of the person turning (0.1 s apart) by 1.6 to 13.8. (A
/// person standing perfectly still in a still scene differs by 0.5-1.2 from 0.1 s to the
/// next: such frames would be refused as replays, which is why a turn is asked between them.)
pub const NEAR_DUPLICATE_MEAN_DIFFERENCE: f32 = 1.0;

/// One uploaded frame, decoded once for what the server measures itself.
#[derive(Clone, Debug)]
pub struct Frame {
    pub bytes: bytes::Bytes,
    pub width: u32,
    pub height: u32,
    pub fingerprint: Fingerprint,
}

impl Frame {
    /// `None` if the bytes are not a JPEG or PNG that decodes.
    pub fn decode(bytes: bytes::Bytes) -> Option<Self> {
        let image = image::load_from_memory(&bytes).ok()?;
        let grey = image::imageops::resize(
            &image.to_luma8(),
            FINGERPRINT_SIDE,
            FINGERPRINT_SIDE,
            image::imageops::FilterType::Triangle,
        );
        Some(Self {
            width: image.width(),
            height: image.height(),
            fingerprint: Fingerprint(grey.into_raw()),
            bytes,
        })
    }
}

impl Fingerprint {
    /// Reads back [`as_bytes`](Self::as_bytes); `None` for anything of the wrong size.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == (FINGERPRINT_SIDE * FINGERPRINT_SIDE) as usize)
            .then(|| Self(bytes.to_vec()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Mean absolute difference of the grey levels, 0-255.
    pub fn difference(&self, other: &Fingerprint) -> f32 {
        let total: u64 = self
            .0
            .iter()
            .zip(&other.0)
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .sum();
        total as f32 / self.0.len().max(1) as f32
    }

    pub fn is_near(&self, other: &Fingerprint) -> bool {
        self.difference(other) < NEAR_DUPLICATE_MEAN_DIFFERENCE
    }
}

/// How many fingerprints of a user's past frames are kept to catch a replay (three
/// challenges' worth).
pub const REMEMBERED_FRAMES: usize = 3 * STEPS;

/// Whether any frame repeats another of the same challenge or a remembered earlier one.
pub fn any_replayed(frames: &[Fingerprint], earlier: &[Fingerprint]) -> bool {
    frames.iter().enumerate().any(|(i, frame)| {
        frames[..i].iter().any(|other| frame.is_near(other))
            || earlier.iter().any(|other| frame.is_near(other))
    })
}

/// The fingerprints to remember after this challenge: its frames first, then the earlier
/// ones, at most [`REMEMBERED_FRAMES`].
pub fn remembered(frames: &[Fingerprint], earlier: &[Fingerprint]) -> Vec<Fingerprint> {
    frames
        .iter()
        .chain(earlier)
        .take(REMEMBERED_FRAMES)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_hold_a_frontal_step_and_a_turn_and_never_repeat_a_step() {
        let all = Sequence::all();
        assert_eq!(all.len(), 10, "{all:?}");
        for sequence in &all {
            assert_eq!(
                sequence.to_string().parse::<Sequence>().as_ref(),
                Ok(sequence)
            );
            assert_eq!(sequence.steps()[sequence.frontal()], Step::Centre);
        }
        for bad in [
            "centre,centre,left",
            "left,right,left",
            "centre,left",
            "centre,up,left",
            "",
        ] {
            assert!(bad.parse::<Sequence>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_draw_is_never_the_previous_sequence() {
        let previous: Sequence = "centre,left,right".parse().unwrap();
        let mut seen = std::collections::HashSet::new();
        for random in 0..100 {
            let drawn = Sequence::draw(Some(&previous), random);
            assert_ne!(drawn, previous);
            seen.insert(drawn);
        }
        assert_eq!(seen.len(), 9, "every other sequence can come out");
    }

    #[test]
    fn each_step_accepts_its_pose_only() {
        assert!(Step::Centre.shown_by(3.0, -5.0));
        assert!(!Step::Centre.shown_by(14.0, 0.0));
        assert!(Step::Left.shown_by(-30.0, 0.0));
        assert!(!Step::Left.shown_by(30.0, 0.0));
        assert!(
            !Step::Left.shown_by(-12.0, 0.0),
            "half a turn proves nothing"
        );
        assert!(Step::Right.shown_by(25.0, 10.0));
        assert!(!Step::Right.shown_by(25.0, 40.0), "tipped too far");
    }

    #[test]
    fn a_tilted_photo_is_narrower_than_its_turn_explains() {
        // From the measurements: a live frame at -39.9 degrees (0.743 of the frontal
        // proportion), a photo tilted by 50 degrees reading -23.9 (0.701).
        assert!(foreshortening_fits(0.743, 1.0, -39.9));
        assert!(!foreshortening_fits(0.701, 1.0, -23.9));
        let square = [(0.4, 0.4), (0.6, 0.4), (0.42, 0.6), (0.58, 0.6)];
        assert_eq!(proportion(square, 100, 100), Some(1.0));
        assert_eq!(proportion(square, 200, 100), Some(2.0));
    }

    #[test]
    fn a_frame_seen_before_is_a_replay() {
        let a = Fingerprint(vec![10; 1024]);
        // Half the levels one higher: a mean difference of 0.5, as a re-encode gives.
        let b = Fingerprint((0..1024).map(|i| 10 + (i % 2) as u8).collect());
        let c = Fingerprint(vec![60; 1024]);
        assert!(a.is_near(&b));
        assert!(!a.is_near(&c));
        assert!(any_replayed(
            &[a.clone(), c.clone()],
            std::slice::from_ref(&b)
        ));
        assert!(any_replayed(&[a.clone(), b.clone()], &[]));
        assert!(!any_replayed(&[a.clone(), c.clone()], &[]));
        let kept = remembered(&[a.clone(), c.clone()], &vec![b; 20]);
        assert_eq!(kept.len(), REMEMBERED_FRAMES);
        assert_eq!(kept[..2], [a, c]);
    }
}
