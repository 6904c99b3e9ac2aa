//! The local stand-in for Rekognition Face Liveness: `CreateFaceLivenessSession` opens a
//! session, the client uploads one frame per head-pose step to it, and
//! `GetFaceLivenessSessionResults` decides the session with the same active checks as the
//! verifier's `active` policy ([`facegate_shared::liveness`]).
//!
//! What differs from AWS, on purpose and documented: AWS's FaceLivenessDetector streams video
//! to `StartFaceLivenessSession` and AWS decides from light and movement; here the client
//! reads the session's steps (`GET /liveness/sessions/{id}`) and PUTs a frame per step
//! (`PUT /liveness/sessions/{id}/frames/{n}`), and the engine decides: every frame an image
//! with exactly one face showing its step's pose, turns foreshortened as a head's and not a
//! tilted picture's, every frame the frontal frame's person, no frame a near-duplicate of
//! another or of a frame of a recent session. `Confidence` is 99 for a live session and 0
//! otherwise (the reason stays in the engine's log, as AWS never gives one). The reference
//! image is the frontal frame.
//!
//! Sessions live in memory, as long as AWS's (3 minutes), at most [`MAX_SESSIONS`] at once and
//! [`MAX_HELD_FRAME_BYTES`] of frames in all; a step's frame can be uploaded once, and never
//! after the session is decided or expired.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use facegate_shared::liveness::{self, Fingerprint, Frame, Sequence};
use uuid::Uuid;

use crate::face::{self, BoundingBox, ImageAnalysis};

/// How long a session can be used: AWS's session lifetime.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(180);
/// Sessions open at once; creating one more first drops the expired ones, then is refused.
pub const MAX_SESSIONS: usize = 1024;
/// Bytes of frames held at once, across every session: an upload beyond it is refused until
/// sessions are decided or expire (frames are dropped then), so open sessions cannot fill the
/// engine's memory (1024 sessions of three 5 MB frames would be 15 GB).
pub const MAX_HELD_FRAME_BYTES: usize = 256 * 1024 * 1024;
/// Frames of recent sessions remembered, to refuse a frame replayed into a new session.
pub const REMEMBERED_FRAMES: usize = 3 * 1024;
/// Every frame but the frontal one must be the frontal frame's person at this similarity (the
/// verifier's `FACEGATE_LIVENESS_SAME_PERSON_THRESHOLD` default).
pub const SAME_PERSON_SIMILARITY: f32 = 90.0;
/// `Confidence` of a live session; a refused one reads 0.
pub const LIVE_CONFIDENCE: f32 = 99.0;

/// How a session was decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Every check passed: the frontal frame and its face's box.
    Live {
        reference: Bytes,
        bounding_box: BoundingBox,
    },
    /// A check failed (why, for the log).
    NotLive(&'static str),
}

/// Where a session is, as `GetFaceLivenessSessionResults` reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// No frame yet.
    Created,
    /// Some frames, not all.
    InProgress,
    Expired,
    /// Every frame is in, not judged yet: the steps and the frames, in step order.
    Complete {
        steps: Sequence,
        frames: Vec<Bytes>,
    },
    Decided(Decision),
}

/// Why a frame upload is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("no such liveness session")]
    NotFound,
    #[error("the liveness session has expired")]
    Expired,
    #[error("this session has no step {0}")]
    NoSuchStep(usize),
    #[error("step {0} already has its frame")]
    AlreadyUploaded(usize),
    #[error("the liveness session is already decided")]
    Decided,
    #[error("too many liveness frames are waiting; try again later")]
    Busy,
}

/// Opening a session failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{MAX_SESSIONS} liveness sessions are open; try again later")]
pub struct TooManySessions;

struct Session {
    created: Instant,
    steps: Sequence,
    frames: Vec<Option<Bytes>>,
    decided: Option<Decision>,
}

impl Session {
    /// Drops the frames; returns their bytes.
    fn drop_frames(&mut self) -> usize {
        self.frames
            .iter_mut()
            .filter_map(Option::take)
            .map(|f| f.len())
            .sum()
    }
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<Uuid, Session>,
    /// `ClientRequestToken` -> session, so a retried create opens no second session.
    tokens: HashMap<String, Uuid>,
    recent_frames: VecDeque<Fingerprint>,
    /// Bytes of every frame held, at most [`MAX_HELD_FRAME_BYTES`].
    held_bytes: usize,
}

/// Every open session.
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<Inner>,
}

impl Sessions {
    /// Opens a session asking for a random sequence (`random`: fresh entropy); the same
    /// `token` within a session's lifetime gives the same session.
    pub fn create(
        &self,
        token: Option<&str>,
        random: u64,
        now: Instant,
    ) -> Result<Uuid, TooManySessions> {
        let mut inner = self.lock();
        if let Some(id) = token.and_then(|t| inner.tokens.get(t)).copied()
            && inner.sessions.contains_key(&id)
        {
            return Ok(id);
        }
        inner.drop_expired(now);
        if inner.sessions.len() >= MAX_SESSIONS {
            return Err(TooManySessions);
        }
        let id = Uuid::new_v4();
        let steps = Sequence::draw(None, random);
        inner.sessions.insert(
            id,
            Session {
                created: now,
                frames: vec![None; steps.steps().len()],
                steps,
                decided: None,
            },
        );
        if let Some(token) = token {
            inner.tokens.insert(token.to_string(), id);
        }
        Ok(id)
    }

    /// The steps a session asks for and how long it has left.
    pub fn steps(&self, id: Uuid, now: Instant) -> Result<(Sequence, Duration), FrameError> {
        let inner = self.lock();
        let session = inner.sessions.get(&id).ok_or(FrameError::NotFound)?;
        let left = SESSION_LIFETIME.saturating_sub(now.duration_since(session.created));
        if left.is_zero() {
            return Err(FrameError::Expired);
        }
        Ok((session.steps.clone(), left))
    }

    /// Stores the frame of step `step` (from 1).
    pub fn put_frame(
        &self,
        id: Uuid,
        step: usize,
        frame: Bytes,
        now: Instant,
    ) -> Result<(), FrameError> {
        let mut inner = self.lock();
        let held = inner.held_bytes;
        let session = inner.sessions.get_mut(&id).ok_or(FrameError::NotFound)?;
        if now.duration_since(session.created) >= SESSION_LIFETIME {
            return Err(FrameError::Expired);
        }
        if session.decided.is_some() {
            return Err(FrameError::Decided);
        }
        let slot = step
            .checked_sub(1)
            .and_then(|i| session.frames.get_mut(i))
            .ok_or(FrameError::NoSuchStep(step))?;
        if slot.is_some() {
            return Err(FrameError::AlreadyUploaded(step));
        }
        if held + frame.len() > MAX_HELD_FRAME_BYTES {
            return Err(FrameError::Busy);
        }
        let size = frame.len();
        *slot = Some(frame);
        inner.held_bytes += size;
        Ok(())
    }

    /// Where the session is; `None` for an unknown one.
    pub fn progress(&self, id: Uuid, now: Instant) -> Option<Progress> {
        let inner = self.lock();
        let session = inner.sessions.get(&id)?;
        if let Some(decision) = &session.decided {
            return Some(Progress::Decided(decision.clone()));
        }
        if now.duration_since(session.created) >= SESSION_LIFETIME {
            return Some(Progress::Expired);
        }
        let uploaded: Option<Vec<Bytes>> = session.frames.iter().cloned().collect();
        Some(match uploaded {
            Some(frames) => Progress::Complete {
                steps: session.steps.clone(),
                frames,
            },
            None if session.frames.iter().all(Option::is_none) => Progress::Created,
            None => Progress::InProgress,
        })
    }

    /// Records the decision (the first one stands: two racing reads decide alike) and
    /// drops the frames; returns the decision that stands.
    pub fn decide(&self, id: Uuid, decision: Decision) -> Decision {
        let mut inner = self.lock();
        let Some(session) = inner.sessions.get_mut(&id) else {
            return decision;
        };
        let released = session.drop_frames();
        let stands = session.decided.get_or_insert(decision).clone();
        inner.held_bytes -= released;
        stands
    }

    /// Whether any of `frames` repeats another of them or a remembered frame of a recent
    /// session; remembers them either way.
    pub fn replayed(&self, frames: &[Fingerprint]) -> bool {
        let mut inner = self.lock();
        let earlier: Vec<Fingerprint> = inner.recent_frames.iter().cloned().collect();
        let replayed = liveness::any_replayed(frames, &earlier);
        for frame in frames {
            inner.recent_frames.push_front(frame.clone());
        }
        inner.recent_frames.truncate(REMEMBERED_FRAMES);
        replayed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data behind: keep serving.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    /// Forgets the expired sessions and their frames (a few hundred entries at most).
    fn drop_expired(&mut self, now: Instant) {
        let mut released = 0;
        self.sessions.retain(|_, s| {
            let live = now.duration_since(s.created) < SESSION_LIFETIME;
            if !live {
                released += s.drop_frames();
            }
            live
        });
        self.held_bytes -= released;
        let sessions = &self.sessions;
        self.tokens.retain(|_, id| sessions.contains_key(id));
    }
}

/// The active checks on a complete session's frames, already analysed (`analyses[i]` of
/// `frames[i]`). Fingerprints are checked by the caller ([`Sessions::replayed`]).
pub fn judge(steps: &Sequence, frames: &[Frame], analyses: &[ImageAnalysis]) -> Decision {
    if frames.len() != steps.steps().len() || analyses.len() != frames.len() {
        return Decision::NotLive("a frame is missing");
    }
    let mut faces = Vec::with_capacity(frames.len());
    for (analysis, step) in analyses.iter().zip(steps.steps()) {
        let [face] = analysis.faces.as_slice() else {
            return Decision::NotLive("a frame does not hold exactly one face");
        };
        if !step.shown_by(face.pose.yaw, face.pose.pitch) {
            tracing::info!(%step, yaw = face.pose.yaw, pitch = face.pose.pitch,
                "liveness frame does not show its step");
            return Decision::NotLive("a frame does not show its step");
        }
        faces.push(face);
    }
    let frontal = steps.frontal();
    let proportion = |i: usize| {
        let l = &faces[i].landmarks;
        // eyeLeft, eyeRight, mouthLeft, mouthRight: the nose (index 2) is not used.
        let points = [l[0], l[1], l[3], l[4]].map(|p| (p.x, p.y));
        liveness::proportion(points, frames[i].width, frames[i].height)
    };
    for i in (0..frames.len()).filter(|i| *i != frontal) {
        let fits = match (proportion(i), proportion(frontal)) {
            (Some(turned), Some(front)) => {
                liveness::foreshortening_fits(turned, front, faces[i].pose.yaw)
            }
            _ => false,
        };
        if !fits {
            tracing::info!(frame = i + 1, turned = ?proportion(i), frontal = ?proportion(frontal),
                yaw = faces[i].pose.yaw, "liveness turn narrower than a head's");
            return Decision::NotLive("a turn narrower than a head's: a tilted picture");
        }
        if face::similarity(&faces[frontal].embedding, &faces[i].embedding) < SAME_PERSON_SIMILARITY
        {
            return Decision::NotLive("the frames are not all one person");
        }
    }
    Decision::Live {
        reference: frames[frontal].bytes.clone(),
        bounding_box: faces[frontal].bounding_box,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_takes_each_frame_once_and_only_while_it_lives() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let id = sessions.create(Some("challenge-1"), 7, start).unwrap();
        assert_eq!(
            sessions.create(Some("challenge-1"), 8, start).unwrap(),
            id,
            "a retried create is the same session"
        );
        assert_eq!(sessions.progress(id, start), Some(Progress::Created));
        let frame = Bytes::from_static(b"frame");
        sessions.put_frame(id, 1, frame.clone(), start).unwrap();
        assert_eq!(sessions.progress(id, start), Some(Progress::InProgress));
        assert_eq!(
            sessions.put_frame(id, 1, frame.clone(), start),
            Err(FrameError::AlreadyUploaded(1))
        );
        assert_eq!(
            sessions.put_frame(id, 4, frame.clone(), start),
            Err(FrameError::NoSuchStep(4))
        );
        assert_eq!(
            sessions.put_frame(id, 0, frame.clone(), start),
            Err(FrameError::NoSuchStep(0))
        );
        sessions.put_frame(id, 2, frame.clone(), start).unwrap();
        sessions.put_frame(id, 3, frame.clone(), start).unwrap();
        assert!(matches!(
            sessions.progress(id, start),
            Some(Progress::Complete { frames, .. }) if frames.len() == 3
        ));
        let refused = Decision::NotLive("test");
        assert_eq!(sessions.decide(id, refused.clone()), refused);
        let live = Decision::Live {
            reference: frame.clone(),
            bounding_box: BoundingBox {
                left: 0.0,
                top: 0.0,
                width: 1.0,
                height: 1.0,
            },
        };
        assert_eq!(
            sessions.decide(id, live),
            refused,
            "the first decision stands"
        );
        assert_eq!(
            sessions.put_frame(id, 1, frame.clone(), start),
            Err(FrameError::Decided)
        );

        let other = sessions.create(None, 9, start).unwrap();
        let late = start + SESSION_LIFETIME;
        assert_eq!(sessions.progress(other, late), Some(Progress::Expired));
        assert_eq!(
            sessions.put_frame(other, 1, frame, late),
            Err(FrameError::Expired)
        );
        assert_eq!(sessions.steps(other, late), Err(FrameError::Expired));
        assert_eq!(sessions.progress(Uuid::new_v4(), start), None);
    }

    #[test]
    fn the_sessions_are_bounded_and_expired_ones_make_room() {
        let sessions = Sessions::default();
        let start = Instant::now();
        for n in 0..MAX_SESSIONS {
            sessions.create(None, n as u64, start).unwrap();
        }
        assert_eq!(sessions.create(None, 0, start), Err(TooManySessions));
        assert!(sessions.create(None, 0, start + SESSION_LIFETIME).is_ok());
    }

    #[test]
    fn the_frames_held_are_bounded_and_released_by_a_decision() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let big = Bytes::from(vec![0u8; MAX_HELD_FRAME_BYTES / 2]);
        let a = sessions.create(None, 1, start).unwrap();
        let b = sessions.create(None, 2, start).unwrap();
        sessions.put_frame(a, 1, big.clone(), start).unwrap();
        sessions.put_frame(a, 2, big.clone(), start).unwrap();
        assert_eq!(
            sessions.put_frame(b, 1, Bytes::from_static(b"x"), start),
            Err(FrameError::Busy)
        );
        sessions.decide(a, Decision::NotLive("test"));
        sessions.put_frame(b, 1, big.clone(), start).unwrap();
        // An expired session's frames are released when the next session is created.
        let later = start + SESSION_LIFETIME;
        let c = sessions.create(None, 3, later).unwrap();
        sessions.put_frame(c, 1, big.clone(), later).unwrap();
        sessions.put_frame(c, 2, big, later).unwrap();
    }

    #[test]
    fn a_frame_of_a_recent_session_is_a_replay() {
        let sessions = Sessions::default();
        let a = Fingerprint::from_bytes(&[10; 1024]).unwrap();
        let b = Fingerprint::from_bytes(&[90; 1024]).unwrap();
        let c = Fingerprint::from_bytes(&[170; 1024]).unwrap();
        assert!(!sessions.replayed(&[a.clone(), b.clone()]));
        assert!(sessions.replayed(&[c.clone(), a]), "a frame seen before");
        assert!(sessions.replayed(&[b.clone(), b]), "one frame twice");
    }
}
