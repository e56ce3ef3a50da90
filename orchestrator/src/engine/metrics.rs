//! The executive dashboard's figures, from the engine's own rows: cases
//! opened and closed per day by severity, time to first decision (MTTA)
//! and to close (MTTR), open gates by age, and what people did with
//! Vigil's own proposals. Every figure says how it is computed
//! ([`MTTA_FORMULA`], [`MTTR_FORMULA`]).

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Serialize;
use uuid::Uuid;

use super::state::{CaseState, GateState, Severity};
use crate::Result;
use crate::store::TenantTx;
use crate::store::entity::{case, draft, gate};

pub const MTTA_FORMULA: &str = "for each case opened in the period that a person has decided something on: the time from the case opening to the first decision on it (a gate approved or rejected, a draft approved or rejected); MTTA is the median of those times";
pub const MTTR_FORMULA: &str = "for each case closed in the period: the time from the case opening to its closing (its last change while closed); MTTR is the median of those times";

/// The severities in the dashboard's order (most severe first).
pub const SEVERITIES: [Severity; 4] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
];

#[derive(Debug, Clone, Serialize)]
pub struct Day {
    pub day: NaiveDate,
    /// Cases opened that day, by severity in [`SEVERITIES`] order.
    pub opened: [u64; 4],
    pub closed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    pub days: Vec<Day>,
    pub open_cases: u64,
    /// Median minutes to the first decision, and over how many cases.
    pub mtta_minutes: Option<f64>,
    pub mtta_cases: usize,
    pub mttr_minutes: Option<f64>,
    pub mttr_cases: usize,
    /// Gates waiting for a person, by age: < 1 h, 1–4 h, 4–24 h, > 24 h.
    pub open_gates_by_age: [u64; 4],
    /// Vigil's proposals in the period: approved (or executed), rejected, waiting.
    pub proposals: [u64; 3],
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn minutes(d: Duration) -> f64 {
    d.num_seconds().max(0) as f64 / 60.0
}

/// The dashboard over the `days` days up to `now`.
pub async fn dashboard(tx: &TenantTx, now: DateTime<Utc>, days: i64) -> Result<Dashboard> {
    let t = tx.tenant().0;
    let start_day = (now - Duration::days(days - 1)).date_naive();
    let Some(start) = start_day.and_hms_opt(0, 0, 0).map(|d| d.and_utc()) else {
        return Err(crate::Error::Invalid("no such period".into()));
    };
    let mut out: Vec<Day> = (0..days)
        .filter_map(|i| start_day.checked_add_signed(Duration::days(i)))
        .map(|day| Day {
            day,
            opened: [0; 4],
            closed: 0,
        })
        .collect();
    let index = |at: DateTime<Utc>| usize::try_from((at.date_naive() - start_day).num_days()).ok();
    let live = case::Entity::find()
        .filter(case::Column::TenantId.eq(t))
        .filter(case::Column::MergedInto.is_null());
    let open_cases = {
        use sea_orm::PaginatorTrait;
        live.clone()
            .filter(case::Column::State.eq(CaseState::Open.as_str()))
            .count(&**tx)
            .await?
    };
    let opened = live
        .clone()
        .filter(case::Column::CreatedAt.gte(start))
        .all(&**tx)
        .await?;
    let closed = live
        .filter(case::Column::State.eq(CaseState::Closed.as_str()))
        .filter(case::Column::UpdatedAt.gte(start))
        .all(&**tx)
        .await?;
    for c in &opened {
        let sev = SEVERITIES
            .iter()
            .position(|s| s.as_str() == c.severity)
            .unwrap_or(3);
        if let Some(d) = index(c.created_at).and_then(|i| out.get_mut(i)) {
            d.opened[sev] += 1;
        }
    }
    let mut mttr = Vec::new();
    for c in &closed {
        if let Some(d) = index(c.updated_at).and_then(|i| out.get_mut(i)) {
            d.closed += 1;
        }
        mttr.push(minutes(c.updated_at - c.created_at));
    }
    // First decisions on the period's cases.
    let ids: Vec<Uuid> = opened.iter().map(|c| c.id).collect();
    let mut first: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    let mut proposals = [0u64; 3];
    for chunk in ids.chunks(500) {
        for g in gate::Entity::find()
            .filter(gate::Column::TenantId.eq(t))
            .filter(gate::Column::CaseId.is_in(chunk.to_vec()))
            .all(&**tx)
            .await?
        {
            if let Some(at) = g.decided_at {
                first
                    .entry(g.case_id)
                    .and_modify(|f| *f = (*f).min(at))
                    .or_insert(at);
            }
            if g.requested_by.starts_with("system:") {
                let i = match g.state.as_str() {
                    s if s == GateState::Approved.as_str() || s == GateState::Executed.as_str() => 0,
                    s if s == GateState::Rejected.as_str() => 1,
                    _ => 2,
                };
                proposals[i] += 1;
            }
        }
        for d in draft::Entity::find()
            .filter(draft::Column::TenantId.eq(t))
            .filter(draft::Column::CaseId.is_in(chunk.to_vec()))
            .filter(draft::Column::DecidedAt.is_not_null())
            .all(&**tx)
            .await?
        {
            if let Some(at) = d.decided_at {
                first
                    .entry(d.case_id)
                    .and_modify(|f| *f = (*f).min(at))
                    .or_insert(at);
            }
        }
    }
    let created: HashMap<Uuid, DateTime<Utc>> = opened.iter().map(|c| (c.id, c.created_at)).collect();
    let mtta: Vec<f64> = first
        .iter()
        .filter_map(|(id, at)| created.get(id).map(|c| minutes(*at - *c)))
        .collect();
    let mut open_gates_by_age = [0u64; 4];
    for g in gate::Entity::find()
        .filter(gate::Column::TenantId.eq(t))
        .filter(gate::Column::State.is_in([GateState::Pending.as_str(), GateState::Escalated.as_str()]))
        .all(&**tx)
        .await?
    {
        let h = (now - g.requested_at).num_minutes() as f64 / 60.0;
        let i = if h < 1.0 {
            0
        } else if h < 4.0 {
            1
        } else if h < 24.0 {
            2
        } else {
            3
        };
        open_gates_by_age[i] += 1;
    }
    Ok(Dashboard {
        days: out,
        open_cases,
        mtta_cases: mtta.len(),
        mtta_minutes: median(mtta),
        mttr_cases: mttr.len(),
        mttr_minutes: median(mttr),
        open_gates_by_age,
        proposals,
    })
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
