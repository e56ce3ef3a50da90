//! The assessment's settings: the weight of each signal the deterministic
//! assessment reads, the totals from which Vigil proposes a ticket, an
//! escalation or closing a case as benign, and the detection names the
//! tenant knows to be benign. Per tenant (`tenant_controls.assessment`),
//! with the defaults below; changed by a tenant admin, audited.
//!
//! | signal | default weight |
//! |---|---|
//! | an entity of the case is on the indicator list (each, up to 5) | 0.6 |
//! | two or more hosts involved | 0.2 |
//! | five or more alerts | 0.2 |
//! | an alert rated high by its source | 0.3 |
//! | an alert rated critical by its source | 0.5 |
//! | an ATT&CK tactic of an intrusion under way (credential access, lateral movement, exfiltration, impact, command and control; each, up to 2) | 0.3 |
//! | another ATT&CK tactic (each, up to 2) | 0.1 |
//! | CrowdStrike reports a host online and not contained (containment only) | 0.1 |
//! | CrowdStrike Identity Protection gives a user of the case a privileged role (Domain, Enterprise or Schema Admins, Administrators, an operators group, …; each user, up to 3) | 0.3 |
//! | every alert comes from an entity on the tenant's ignore list (a scanner) | −0.6 |
//! | every alert's detection name is one the tenant knows to be benign | −0.6 |
//!
//! From a total of 0.5 Vigil proposes a ticket, from 1.0 escalation to
//! Critical (then the ticket, once escalated), and at −0.5 or below, with a
//! benign signal among the reasons, closing the case as benign.

use serde::{Deserialize, Serialize};

use crate::audit::Actor;
use crate::store::TenantTx;
use crate::store::controls;
use crate::store::entity::tenant_control::Column;
use crate::{Clock, Error, Result};

/// The weight of each signal (−1 to 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[derive(utoipa::ToSchema)]
#[schema(as = AssessmentWeights)]
pub struct Weights {
    pub indicator: f64,
    pub hosts: f64,
    pub alerts: f64,
    pub severity_high: f64,
    pub severity_critical: f64,
    pub tactic_intrusion: f64,
    pub tactic_other: f64,
    pub uncontained: f64,
    pub privileged_account: f64,
    pub known_source: f64,
    pub benign_detection: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            indicator: 0.6,
            hosts: 0.2,
            alerts: 0.2,
            severity_high: 0.3,
            severity_critical: 0.5,
            tactic_intrusion: 0.3,
            tactic_other: 0.1,
            uncontained: 0.1,
            privileged_account: 0.3,
            known_source: -0.6,
            benign_detection: -0.6,
        }
    }
}

/// A tenant's assessment settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[derive(utoipa::ToSchema)]
#[schema(as = AssessmentSettings)]
pub struct Settings {
    pub weights: Weights,
    /// From this total Vigil proposes a ticket (0 to 10).
    pub ticket_at: f64,
    /// From this total, escalation to Critical (`ticket_at` to 10).
    pub escalate_at: f64,
    /// At or below this total, with a benign signal, closing as benign (−10 to 0).
    pub close_at: f64,
    /// Detection names (matched case-insensitively as parts of the alert's
    /// title, rule or message) the tenant knows to be benign: a test file, a
    /// sanctioned scanner's rule. At most 100, each 3 to 200 characters.
    pub benign_detections: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            weights: Weights::default(),
            ticket_at: 0.5,
            escalate_at: 1.0,
            close_at: -0.5,
            // The anti-malware test file every product flags and no one means.
            benign_detections: vec!["eicar".into()],
        }
    }
}

impl Settings {
    /// Checks ranges; detection names trimmed, lower-cased, deduplicated.
    pub fn validated(mut self) -> Result<Self> {
        let w = &self.weights;
        for (name, v) in [
            ("indicator", w.indicator),
            ("hosts", w.hosts),
            ("alerts", w.alerts),
            ("severity_high", w.severity_high),
            ("severity_critical", w.severity_critical),
            ("tactic_intrusion", w.tactic_intrusion),
            ("tactic_other", w.tactic_other),
            ("uncontained", w.uncontained),
            ("privileged_account", w.privileged_account),
            ("known_source", w.known_source),
            ("benign_detection", w.benign_detection),
        ] {
            if !(-1.0..=1.0).contains(&v) {
                return Err(Error::Invalid(format!("weights.{name} must be -1 to 1")));
            }
        }
        if !(0.0..=10.0).contains(&self.ticket_at) {
            return Err(Error::Invalid("ticket_at must be 0 to 10".into()));
        }
        if !(self.ticket_at..=10.0).contains(&self.escalate_at) {
            return Err(Error::Invalid("escalate_at must be ticket_at to 10".into()));
        }
        if !(-10.0..=0.0).contains(&self.close_at) {
            return Err(Error::Invalid("close_at must be -10 to 0".into()));
        }
        if self.benign_detections.len() > 100 {
            return Err(Error::Invalid("at most 100 benign detection names".into()));
        }
        for d in &mut self.benign_detections {
            *d = d.trim().to_lowercase();
            let n = d.chars().count();
            if !(3..=200).contains(&n) || d.chars().any(char::is_control) {
                return Err(Error::Invalid(
                    "a benign detection name is 3 to 200 printable characters".into(),
                ));
            }
        }
        self.benign_detections.sort();
        self.benign_detections.dedup();
        Ok(self)
    }

    /// The benign pattern a detection name contains, if any.
    pub fn benign(&self, detection: &str) -> Option<&str> {
        let d = detection.to_lowercase();
        self.benign_detections
            .iter()
            .find(|p| d.contains(p.as_str()))
            .map(String::as_str)
    }
}

/// The tenant's settings (the defaults until set).
pub async fn settings(tx: &TenantTx) -> Result<Settings> {
    controls::read(tx, Column::Assessment, "assessment settings").await
}

/// Replaces the tenant's settings; audited with before and after. Applies
/// to rounds from now on (drafts already written keep their weights).
pub async fn set_settings(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    new: Settings,
) -> Result<Settings> {
    let new = new.validated()?;
    let before = settings(tx).await?;
    controls::write(
        tx,
        clock,
        actor,
        Column::Assessment,
        "assessment.configure",
        &before,
        &new,
    )
    .await?;
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bounds_hold() {
        assert_eq!(Settings::default().validated().unwrap(), Settings::default());
        let mut s = Settings::default();
        s.weights.hosts = 1.5;
        assert!(s.validated().unwrap_err().to_string().contains("weights.hosts"));
        let s = Settings {
            escalate_at: 0.2,
            ..Settings::default()
        };
        assert!(s.validated().is_err(), "escalation below the ticket");
        let s = Settings {
            close_at: 0.1,
            ..Settings::default()
        };
        assert!(s.validated().is_err());
        let s = Settings {
            benign_detections: vec!["ab".into()],
            ..Settings::default()
        };
        assert!(s.validated().is_err());
        let s = Settings {
            benign_detections: vec![" EICAR ".into(), "eicar".into(), "Nessus Scan".into()],
            ..Settings::default()
        }
        .validated()
        .unwrap();
        assert_eq!(s.benign_detections, ["eicar", "nessus scan"]);
        assert_eq!(s.benign("EICAR-Test-File detected"), Some("eicar"));
        assert_eq!(s.benign("Credential dumping"), None);
        let nan = Settings {
            ticket_at: f64::NAN,
            ..Settings::default()
        };
        assert!(nan.validated().is_err(), "NaN is out of every range");
    }
}
