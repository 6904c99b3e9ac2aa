//! `facegate-verifier`: the thin service that answers Amazon Cognito's custom-auth challenges by
//! matching a sign-in selfie against the registered face.
//!
//! Not built yet: the sign-in issue lands it here.
