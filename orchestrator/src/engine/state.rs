//! The engine's states: explicit enums, each with one transition function.
//! An illegal transition is an error (HTTP 409), never silently ignored.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

macro_rules! string_enum {
    ($name:ident { $($variant:ident => $s:literal),* $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                match s {
                    $($s => Ok($name::$variant),)*
                    other => Err(Error::Invalid(format!(
                        concat!("unknown ", stringify!($name), " `{}` (one of: {})"),
                        other,
                        [$($s),*].join(", ")
                    ))),
                }
            }
        }
    };
}

string_enum!(GateKind {
    EscalateCritical => "escalate_critical",
    TicketWrite => "ticket_write",
    CloseCase => "close_case",
    ContainHost => "contain_host",
});

impl GateKind {
    /// Gates whose approval authorizes a write at a vendor (through the outbox).
    pub fn is_external(self) -> bool {
        matches!(self, GateKind::TicketWrite | GateKind::ContainHost)
    }
}

string_enum!(GateState {
    Pending => "pending",
    Escalated => "escalated",
    Approved => "approved",
    Rejected => "rejected",
    Executed => "executed",
});

string_enum!(GateEvent {
    Escalate => "escalate",
    Approve => "approve",
    Reject => "reject",
    Execute => "execute",
});

string_enum!(CaseState {
    Open => "open",
    Closed => "closed",
});

string_enum!(CaseEvent {
    Close => "close",
    Reopen => "reopen",
});

string_enum!(Severity {
    Low => "low",
    Medium => "medium",
    High => "high",
    Critical => "critical",
});

string_enum!(OutboxState {
    Pending => "pending",
    Executing => "executing",
    Done => "done",
    Dead => "dead",
});

string_enum!(OutboxEvent {
    Claim => "claim",
    Succeed => "succeed",
    RetryLater => "retry_later",
    GiveUp => "give_up",
    LeaseExpired => "lease_expired",
});

string_enum!(StepState {
    Waiting => "waiting",
    Pending => "pending",
    Running => "running",
    Succeeded => "succeeded",
    Dead => "dead",
    Cancelled => "cancelled",
});

string_enum!(StepEvent {
    GateApproved => "gate_approved",
    GateRejected => "gate_rejected",
    Claim => "claim",
    Succeed => "succeed",
    RetryLater => "retry_later",
    GiveUp => "give_up",
    LeaseExpired => "lease_expired",
    ManualRetry => "manual_retry",
});

fn illegal(what: &str, from: impl fmt::Display, ev: impl fmt::Display) -> Error {
    Error::Conflict(format!("illegal {what} transition: cannot {ev} when {from}"))
}

impl GateState {
    /// The one transition function of a gate. Nothing leaves `Rejected` or
    /// `Executed`; only `Approved` executes; nothing auto-approves.
    pub fn on(self, ev: GateEvent) -> Result<GateState, Error> {
        use GateEvent as E;
        use GateState as S;
        match (self, ev) {
            (S::Pending, E::Escalate) => Ok(S::Escalated),
            (S::Pending | S::Escalated, E::Approve) => Ok(S::Approved),
            (S::Pending | S::Escalated, E::Reject) => Ok(S::Rejected),
            (S::Approved, E::Execute) => Ok(S::Executed),
            (from, ev) => Err(illegal("gate", from, ev)),
        }
    }

    /// Still waiting for a human.
    pub fn is_open(self) -> bool {
        matches!(self, GateState::Pending | GateState::Escalated)
    }
}

impl CaseState {
    pub fn on(self, ev: CaseEvent) -> Result<CaseState, Error> {
        match (self, ev) {
            (CaseState::Open, CaseEvent::Close) => Ok(CaseState::Closed),
            (CaseState::Closed, CaseEvent::Reopen) => Ok(CaseState::Open),
            (from, ev) => Err(illegal("case", from, ev)),
        }
    }
}

impl OutboxState {
    /// `Done` and `Dead` are final: a done write is never executed again.
    pub fn on(self, ev: OutboxEvent) -> Result<OutboxState, Error> {
        use OutboxEvent as E;
        use OutboxState as S;
        match (self, ev) {
            (S::Pending, E::Claim) => Ok(S::Executing),
            (S::Executing, E::Succeed) => Ok(S::Done),
            (S::Executing, E::RetryLater) => Ok(S::Pending),
            (S::Executing, E::GiveUp) => Ok(S::Dead),
            // A worker died holding the entry: it becomes claimable again
            // and is re-sent with the same idempotency key.
            (S::Executing, E::LeaseExpired) => Ok(S::Pending),
            (from, ev) => Err(illegal("outbox", from, ev)),
        }
    }
}

impl StepState {
    /// The one transition function of a step. A step waiting on a gate
    /// starts only when the gate is approved; `Succeeded` and `Cancelled`
    /// are final; `Dead` leaves only by a person's retry.
    pub fn on(self, ev: StepEvent) -> Result<StepState, Error> {
        use StepEvent as E;
        use StepState as S;
        match (self, ev) {
            (S::Waiting, E::GateApproved) => Ok(S::Pending),
            (S::Waiting, E::GateRejected) => Ok(S::Cancelled),
            (S::Pending, E::Claim) => Ok(S::Running),
            (S::Running, E::LeaseExpired) => Ok(S::Running),
            (S::Running, E::Succeed) => Ok(S::Succeeded),
            (S::Running, E::RetryLater) => Ok(S::Pending),
            (S::Running, E::GiveUp) => Ok(S::Dead),
            (S::Dead, E::ManualRetry) => Ok(S::Pending),
            (from, ev) => Err(illegal("step", from, ev)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gate_event() -> impl Strategy<Value = GateEvent> {
        proptest::sample::select(GateEvent::ALL.to_vec())
    }

    fn outbox_event() -> impl Strategy<Value = OutboxEvent> {
        proptest::sample::select(OutboxEvent::ALL.to_vec())
    }

    proptest! {
        /// No sequence of events executes a gate that was not approved, and
        /// a gate executes at most once.
        #[test]
        fn gates_execute_only_once_and_only_when_approved(events in proptest::collection::vec(gate_event(), 0..40)) {
            let mut s = GateState::Pending;
            let mut approved = false;
            let mut executed = 0;
            for ev in events {
                let before = s;
                match s.on(ev) {
                    Ok(next) => {
                        if next == GateState::Approved { approved = true; }
                        if next == GateState::Executed { executed += 1; prop_assert_eq!(before, GateState::Approved); }
                        prop_assert!(before != GateState::Rejected && before != GateState::Executed, "final states are final");
                        s = next;
                    }
                    Err(e) => prop_assert!(matches!(e, Error::Conflict(_))),
                }
            }
            prop_assert!(executed <= 1);
            prop_assert!(executed == 0 || approved);
        }

        /// Once done, an outbox entry never runs again.
        #[test]
        fn outbox_done_is_final(events in proptest::collection::vec(outbox_event(), 0..40)) {
            let mut s = OutboxState::Pending;
            let mut successes = 0;
            for ev in events {
                if let Ok(next) = s.on(ev) {
                    if next == OutboxState::Done { successes += 1; }
                    prop_assert!(s != OutboxState::Done && s != OutboxState::Dead);
                    s = next;
                }
            }
            prop_assert!(successes <= 1);
        }
    }

    fn step_event() -> impl Strategy<Value = StepEvent> {
        proptest::sample::select(StepEvent::ALL.to_vec())
    }

    proptest! {
        /// A step succeeds at most once, never runs before its gate is
        /// approved, and never runs after its gate is rejected.
        #[test]
        fn steps_respect_gates_and_finality(waiting in any::<bool>(), events in proptest::collection::vec(step_event(), 0..50)) {
            let mut s = if waiting { StepState::Waiting } else { StepState::Pending };
            let mut released = !waiting;
            let mut successes = 0;
            for ev in events {
                if let Ok(next) = s.on(ev) {
                    prop_assert!(s != StepState::Succeeded && s != StepState::Cancelled, "final states are final");
                    if ev == StepEvent::GateApproved { released = true; }
                    if next == StepState::Running { prop_assert!(released, "ran before its gate was approved"); }
                    if next == StepState::Succeeded { successes += 1; }
                    s = next;
                }
            }
            prop_assert!(successes <= 1);
        }
    }

    #[test]
    fn names_round_trip() {
        for k in GateKind::ALL {
            assert_eq!(k.as_str().parse::<GateKind>().unwrap(), *k);
        }
        for s in GateState::ALL {
            assert_eq!(s.as_str().parse::<GateState>().unwrap(), *s);
        }
        assert!("delete_everything".parse::<GateKind>().is_err());
        assert!(CaseState::Closed.on(CaseEvent::Close).is_err());
    }
}
