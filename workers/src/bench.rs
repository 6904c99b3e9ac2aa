//! `facegate bench pipeline` (not written yet).
