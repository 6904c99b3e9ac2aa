//! Errors as one log line: the error and every cause under it.
//!
//! The AWS SDK's errors say "service error" at the top and the useful part (the service's code
//! and message) only in their sources, so logging `%e` alone hides why a call failed.

use std::error::Error;

/// `error: cause: cause of cause`.
pub fn chain(error: &(dyn Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);
    #[derive(Debug, thiserror::Error)]
    #[error("inner detail")]
    struct Inner;

    #[test]
    fn every_cause_is_on_the_line() {
        assert_eq!(super::chain(&Outer(Inner)), "outer: inner detail");
    }
}
