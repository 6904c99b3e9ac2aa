//! `facegate-shared`: what every facegate role stands on.
//!
//! - [`aws`]: where each AWS service is reached, and the clients.

pub mod aws;
