//! `SecurityAlert`: something security operations should hear about, published on the
//! `security-alerts` topic with the message attributes `kind` and `severity`, so a subscriber
//! can filter (`{"severity": ["high", "critical"]}`).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Topic;
use crate::events::sns::Publishable;
use crate::ids::{DeviceId, UserId};

/// The message attribute names of a [`SecurityAlert`].
pub const KIND_ATTRIBUTE: &str = "kind";
pub const SEVERITY_ATTRIBUTE: &str = "severity";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecurityAlert {
    /// Derived from what caused the alert, so a redelivered cause does not alert twice.
    pub alert_id: String,
    pub kind: AlertKind,
    pub severity: Severity,
    pub subject: AlertSubject,
    /// One line for a human.
    pub summary: String,
    /// Whatever else helps (counts, windows, similarity, message ids).
    #[serde(default)]
    pub details: serde_json::Map<String, serde_json::Value>,
    pub time: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    /// Many failed sign-ins for one user or from one source within a window.
    RepeatedFailure,
    /// A user was locked.
    Lockout,
    /// A device or a source address failed too many liveness checks and is timed out.
    LivenessTimeout,
    /// A new registration's face matches another user's.
    DuplicateRegistration,
    /// Messages reached a dead-letter queue.
    DeadLetter,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

/// What the alert is about. On the wire: `{"user": "zoë"}`, `{"source": "203.0.113.7"}`,
/// `{"device": "3f2a..."}` or `{"queue": "facegate-uploads-dlq"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertSubject {
    User(UserId),
    Source(IpAddr),
    Device(DeviceId),
    Queue(String),
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::RepeatedFailure => "repeated-failure",
            AlertKind::Lockout => "lockout",
            AlertKind::LivenessTimeout => "liveness-timeout",
            AlertKind::DuplicateRegistration => "duplicate-registration",
            AlertKind::DeadLetter => "dead-letter",
        }
    }
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl Publishable for SecurityAlert {
    const TOPIC: Topic = Topic::SecurityAlerts;

    fn attributes(&self) -> Vec<(&'static str, String)> {
        vec![
            (KIND_ATTRIBUTE, self.kind.as_str().to_string()),
            (SEVERITY_ATTRIBUTE, self.severity.as_str().to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::sns::{Notification, message_attributes};

    fn lockout() -> SecurityAlert {
        let mut details = serde_json::Map::new();
        details.insert("failures".into(), 3.into());
        SecurityAlert {
            alert_id: "lockout:zoë user:1763726400".into(),
            kind: AlertKind::Lockout,
            severity: Severity::High,
            subject: AlertSubject::User(UserId::parse("zoë user").unwrap()),
            summary: "user locked after 3 failed sign-ins in 5 minutes".into(),
            details,
            time: "2026-11-21T12:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn round_trips_with_every_subject() {
        let subjects = [
            AlertSubject::User(UserId::parse("a@b.c").unwrap()),
            AlertSubject::Source("2001:db8::1".parse().unwrap()),
            AlertSubject::Queue("facegate-uploads-dlq".into()),
        ];
        for subject in subjects {
            let alert = SecurityAlert {
                subject,
                ..lockout()
            };
            let again: SecurityAlert =
                serde_json::from_str(&serde_json::to_string(&alert).unwrap()).unwrap();
            assert_eq!(alert, again);
        }
        let json = serde_json::to_value(lockout()).unwrap();
        assert_eq!(json["kind"], "lockout");
        assert_eq!(json["subject"]["user"], "zoë user");
    }

    #[test]
    fn kind_and_severity_are_message_attributes() {
        let attributes = message_attributes(&lockout());
        assert_eq!(attributes["kind"].string_value(), Some("lockout"));
        assert_eq!(attributes["severity"].string_value(), Some("high"));
        assert_eq!(attributes["kind"].data_type(), "String");
        // The names agree with serde's spelling of the enums.
        for kind in [
            AlertKind::RepeatedFailure,
            AlertKind::Lockout,
            AlertKind::LivenessTimeout,
            AlertKind::DuplicateRegistration,
            AlertKind::DeadLetter,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        for severity in [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ] {
            assert_eq!(serde_json::to_value(severity).unwrap(), severity.as_str());
        }
    }

    #[test]
    fn arrives_wrapped_in_an_sns_envelope() {
        let body = include_str!("../../tests/fixtures/sns-security-alert-ministack.json");
        let note = Notification::<SecurityAlert>::parse(body).unwrap();
        assert_eq!(note.event.kind, AlertKind::Lockout);
        assert_eq!(note.attribute("kind"), Some("lockout"));
        assert_eq!(note.attribute("severity"), Some("high"));
    }
}
