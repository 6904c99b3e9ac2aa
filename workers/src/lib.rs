//! `facegate-workers`: the queue workers of the registration pipeline and of failure alerts
//! (indexing, dedup-search, failure-alert), each a handler plugged into the worker runtime of
//! `facegate-shared`.
//!
//! Not built yet: the registration-pipeline and sign-in issues land them here.
