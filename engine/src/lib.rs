//! `facegate-engine`: the local face engine.
//!
//! A real face detector (YuNet) and embedder (SFace) behind Amazon Rekognition's own JSON API,
//! so the rest of facegate uses `aws-sdk-rekognition` everywhere and only the endpoint differs.
//!
//! - [`face`]: the pipeline (decode, detect, align, embed, measure) and the calibrated similarity.

pub mod face;
