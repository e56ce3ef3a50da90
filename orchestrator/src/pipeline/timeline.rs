//! A case's timeline: every alert of the case placed at the time its source
//! says the event happened (not when Vigil received it), oldest first, ties
//! kept in the order the alerts arrived. Each row points at its evidence:
//! the alert and the JSON pointer of the time field it was placed by.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::engine::cases;
use crate::store::TenantTx;
use crate::store::entity::{alert, case_alert};
use crate::{Error, Result};

/// Where a row's evidence is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = TimelineEvidence)]
pub struct Evidence {
    pub alert_id: Uuid,
    /// JSON pointer of the time field; `None` when the alert carries no event
    /// time and the row is placed by its arrival.
    pub pointer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = TimelineRow)]
pub struct Row {
    pub at: DateTime<Utc>,
    /// `event` (the source's time field), `received` (no event time) or
    /// `out_of_bounds` (an untrustworthy event time: placed at receipt).
    pub placed_by: &'static str,
    pub format: String,
    pub summary: String,
    pub evidence: Evidence,
    pub received_at: DateTime<Utc>,
}

/// Candidate time fields per format, most specific first.
fn time_fields(format: &str) -> &'static [&'static str] {
    match format {
        "ocsf" => &[
            "/finding_info/first_seen_time",
            "/time",
            "/finding_info/created_time",
        ],
        "ecs" => &["/event/start", "/@timestamp", "/event/created"],
        "crowdstrike" => &["/timestamp", "/created_timestamp", "/updated_timestamp"],
        "graylog" => &["/event/timestamp", "/timestamp"],
        _ => &[],
    }
}

/// A time as sources write it: epoch milliseconds, RFC 3339, or Graylog's
/// `2026-11-22 10:00:00.000` (UTC).
pub fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        // OCSF timestamps are milliseconds since the epoch.
        Value::Number(n) => n.as_i64().and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
        Value::String(s) => DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .or_else(|| {
                // Graylog and others: "2026-11-22 10:00:00.000" (UTC).
                chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S%.f")
                    .ok()
                    .map(|n| n.and_utc())
            }),
        _ => None,
    }
}

/// How far before its receipt an alert's event time is believed: a backfill
/// or a poller catching up delivers old events; older than the raw
/// telemetry's retention (30 days) is a wrong clock, not a backfill.
pub const MAX_PAST: Duration = Duration::days(30);
/// How far after its receipt an event time is believed (clock skew).
pub const MAX_FUTURE: Duration = Duration::minutes(15);

/// Where an alert sits in time, and why there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub at: DateTime<Utc>,
    /// `event`, `received` (no event time) or `out_of_bounds` (an event
    /// time further than [`MAX_PAST`] / [`MAX_FUTURE`] from its receipt:
    /// placed at receipt, and marked).
    pub placed_by: &'static str,
    /// The time field's pointer, when it was read (also when out of bounds).
    pub pointer: Option<&'static str>,
}

/// Places an alert in time: its own event time when it has one within the
/// bounds around its receipt, else its receipt time. Correlation windows,
/// the timeline and prevalence all use this one placement.
pub fn place(format: &str, v: &Value, received_at: DateTime<Utc>) -> Placement {
    match event_time(format, v) {
        Some((t, p)) if t >= received_at - MAX_PAST && t <= received_at + MAX_FUTURE => Placement {
            at: t,
            placed_by: "event",
            pointer: Some(p),
        },
        Some((_, p)) => Placement {
            at: received_at,
            placed_by: "out_of_bounds",
            pointer: Some(p),
        },
        None => Placement {
            at: received_at,
            placed_by: "received",
            pointer: None,
        },
    }
}

/// The event time of an alert and the pointer it came from.
pub fn event_time(format: &str, v: &Value) -> Option<(DateTime<Utc>, &'static str)> {
    time_fields(format)
        .iter()
        .find_map(|p| v.pointer(p).and_then(parse_time).map(|t| (t, *p)))
}

/// The case's timeline (merged-away cases have none: their alerts moved).
pub async fn of_case(tx: &TenantTx, case_id: Uuid) -> Result<Vec<Row>> {
    cases::get(tx, case_id).await?;
    rows(ordered(tx, case_id).all(&**tx).await?)
}

/// One page of a case's timeline.
#[derive(Debug, Clone)]
pub struct Page {
    pub rows: Vec<Row>,
    /// Rows of the whole timeline.
    pub total: u64,
    /// The time of the page's first row when an earlier page exists (an
    /// event between pages belongs to the page it follows).
    pub from: Option<DateTime<Utc>>,
    /// The time of the next page's first row, when there is a next page.
    pub until: Option<DateTime<Utc>>,
}

/// `limit` rows of the case's timeline from `offset`, in the same order as
/// [`of_case`], read and parsed for that page only (the order is the
/// stored placement, indexed by the case's links).
pub async fn page_of_case(tx: &TenantTx, case_id: Uuid, offset: u64, limit: u64) -> Result<Page> {
    use sea_orm::{PaginatorTrait, QuerySelect};
    cases::get(tx, case_id).await?;
    let total = case_alert::Entity::find()
        .filter(case_alert::Column::TenantId.eq(tx.tenant().0))
        .filter(case_alert::Column::CaseId.eq(case_id))
        .count(&**tx)
        .await?;
    let mut alerts = ordered(tx, case_id)
        .limit(limit.saturating_add(1))
        .offset(offset)
        .all(&**tx)
        .await?;
    let until = if alerts.len() as u64 > limit {
        alerts.pop().map(|a| crate::pipeline::correlate::placed_at(&a))
    } else {
        None
    };
    let rows = rows(alerts)?;
    Ok(Page {
        // Past the last alert, no event is on the page either.
        from: (offset > 0).then(|| rows.first().map_or(DateTime::<Utc>::MAX_UTC, |r| r.at)),
        until,
        rows,
        total,
    })
}

/// The case's alerts in timeline order: placement, then arrival (UUIDv7
/// ids follow it) for ties.
fn ordered(tx: &TenantTx, case_id: Uuid) -> sea_orm::Select<alert::Entity> {
    use sea_orm::QueryOrder;
    use sea_orm::sea_query::{Expr, Order};
    alert::Entity::find()
        .filter(alert::Column::TenantId.eq(tx.tenant().0))
        .filter(alert::Column::Id.in_subquery(crate::pipeline::correlate::alerts_of_case(tx, case_id)))
        .order_by(Expr::cust("COALESCE(event_at, received_at)"), Order::Asc)
        .order_by_asc(alert::Column::ReceivedAt)
        .order_by_asc(alert::Column::Id)
}

fn rows(alerts: Vec<alert::Model>) -> Result<Vec<Row>> {
    let mut rows = Vec::with_capacity(alerts.len());
    for a in alerts {
        let v: Value = serde_json::from_str(&a.raw)
            .map_err(|e| Error::Invalid(format!("stored alert {}: {e}", a.id)))?;
        let p = place(&a.format, &v, a.received_at);
        let pointer = p.pointer.map(str::to_owned);
        rows.push(Row {
            at: p.at,
            placed_by: p.placed_by,
            summary: crate::pipeline::correlate::title(&v),
            format: a.format,
            evidence: Evidence {
                alert_id: a.id,
                pointer,
            },
            received_at: a.received_at,
        });
    }
    // Rows written before placements were stored are placed here.
    rows.sort_by_key(|r| r.at); // stable
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_per_format() {
        let t = |f: &str, v: Value| event_time(f, &v).map(|(t, p)| (t.to_rfc3339(), p));
        assert_eq!(
            t("ocsf", json!({"time": 1_795_000_000_000_i64})),
            Some(("2026-11-18T11:06:40+00:00".into(), "/time"))
        );
        assert_eq!(
            t(
                "ecs",
                json!({"@timestamp": "2026-11-22T10:00:00Z", "event": {"start": "2026-11-22T09:59:00.5Z"}})
            ),
            Some(("2026-11-22T09:59:00.500+00:00".into(), "/event/start"))
        );
        assert_eq!(
            t(
                "graylog",
                json!({"event": {"timestamp": "2026-11-22 10:00:00.000"}})
            ),
            Some(("2026-11-22T10:00:00+00:00".into(), "/event/timestamp"))
        );
        assert_eq!(t("crowdstrike", json!({"timestamp": "not a time"})), None);
        assert_eq!(t("ecs", json!({"@timestamp": true})), None);
    }
}
