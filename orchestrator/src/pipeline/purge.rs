//! Purge, for erasure requests: hard-deletes, in one transaction, audited
//! (`data.purge` with the counts; an entity is named in the audit log only
//! by its SHA-256, so the log does not keep what was erased):
//!
//! * one case with everything derived from it (its gates, their approvals
//!   and outbox rows, drafts, comments, steps, entity index rows, links), and the
//!   alerts that were only in it (with their observables);
//! * all telemetry received before a date (alerts, observables, case links,
//!   entity sightings), open cases or not;
//! * everything mentioning one entity (an e-mail address, a host, …): every
//!   alert that names it (with its observables and links), its sightings,
//!   its case index rows, its IOC entries, the evidence and the comments
//!   that name it.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::{self, Actor, Event};
use crate::pipeline::observables::{self, Kind};
use crate::store::entity::{
    alert, case, case_alert, case_comment, case_entity, draft, entity_host, evidence, gate, gate_approval,
    ioc, observable, outbox, step,
};
use crate::{Clock, Error, Result, TenantTx};

/// What to purge.
#[derive(Debug, Clone)]
pub enum Target {
    Case(Uuid),
    TelemetryBefore(DateTime<Utc>),
    Entity { kind: Kind, value: String },
}

/// What a purge deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Purged {
    pub cases: u64,
    pub alerts: u64,
    pub observables: u64,
    pub case_links: u64,
    pub sightings: u64,
    pub case_entities: u64,
    pub drafts: u64,
    pub gates: u64,
    pub steps: u64,
    pub iocs: u64,
    pub evidence: u64,
    pub comments: u64,
}

/// Alerts (by id) deleted with their observables and case links.
pub(crate) async fn drop_alerts(tx: &TenantTx, ids: Vec<Uuid>, out: &mut Purged) -> Result<()> {
    for chunk in ids.chunks(500) {
        out.observables += observable::Entity::delete_many()
            .filter(observable::Column::AlertId.is_in(chunk.to_vec()))
            .exec(&**tx)
            .await?
            .rows_affected;
        out.case_links += case_alert::Entity::delete_many()
            .filter(case_alert::Column::AlertId.is_in(chunk.to_vec()))
            .exec(&**tx)
            .await?
            .rows_affected;
        out.alerts += alert::Entity::delete_many()
            .filter(alert::Column::Id.is_in(chunk.to_vec()))
            .exec(&**tx)
            .await?
            .rows_affected;
    }
    Ok(())
}

async fn drop_case(tx: &TenantTx, case_id: Uuid, out: &mut Purged) -> Result<()> {
    let t = tx.tenant().0;
    let found = case::Entity::find_by_id(case_id)
        .filter(case::Column::TenantId.eq(t))
        .one(&**tx)
        .await?;
    if found.is_none() {
        return Err(Error::NotFound("case"));
    }
    // Its alerts that no other case holds.
    let mine: Vec<Uuid> = case_alert::Entity::find()
        .filter(case_alert::Column::TenantId.eq(t))
        .filter(case_alert::Column::CaseId.eq(case_id))
        .select_only()
        .column(case_alert::Column::AlertId)
        .into_tuple()
        .all(&**tx)
        .await?;
    let shared: Vec<Uuid> = case_alert::Entity::find()
        .filter(case_alert::Column::TenantId.eq(t))
        .filter(case_alert::Column::AlertId.is_in(mine.clone()))
        .filter(case_alert::Column::CaseId.ne(case_id))
        .select_only()
        .column(case_alert::Column::AlertId)
        .into_tuple()
        .all(&**tx)
        .await?;
    let only_here: Vec<Uuid> = mine.into_iter().filter(|a| !shared.contains(a)).collect();
    out.case_links += case_alert::Entity::delete_many()
        .filter(case_alert::Column::TenantId.eq(t))
        .filter(case_alert::Column::CaseId.eq(case_id))
        .exec(&**tx)
        .await?
        .rows_affected;
    drop_alerts(tx, only_here, out).await?;
    let gates: Vec<Uuid> = gate::Entity::find()
        .filter(gate::Column::TenantId.eq(t))
        .filter(gate::Column::CaseId.eq(case_id))
        .select_only()
        .column(gate::Column::Id)
        .into_tuple()
        .all(&**tx)
        .await?;
    outbox::Entity::delete_many()
        .filter(outbox::Column::GateId.is_in(gates.clone()))
        .exec(&**tx)
        .await?;
    gate_approval::Entity::delete_many()
        .filter(gate_approval::Column::GateId.is_in(gates.clone()))
        .exec(&**tx)
        .await?;
    out.steps += step::Entity::delete_many()
        .filter(step::Column::TenantId.eq(t))
        .filter(step::Column::CaseId.eq(case_id))
        .exec(&**tx)
        .await?
        .rows_affected;
    out.gates += gate::Entity::delete_many()
        .filter(gate::Column::Id.is_in(gates))
        .exec(&**tx)
        .await?
        .rows_affected;
    out.evidence += evidence::Entity::delete_many()
        .filter(evidence::Column::TenantId.eq(t))
        .filter(evidence::Column::CaseId.eq(case_id))
        .exec(&**tx)
        .await?
        .rows_affected;
    out.drafts += draft::Entity::delete_many()
        .filter(draft::Column::TenantId.eq(t))
        .filter(draft::Column::CaseId.eq(case_id))
        .exec(&**tx)
        .await?
        .rows_affected;
    out.case_entities += case_entity::Entity::delete_many()
        .filter(case_entity::Column::TenantId.eq(t))
        .filter(case_entity::Column::CaseId.eq(case_id))
        .exec(&**tx)
        .await?
        .rows_affected;
    out.comments += case_comment::Entity::delete_many()
        .filter(case_comment::Column::TenantId.eq(t))
        .filter(case_comment::Column::CaseId.eq(case_id))
        .exec(&**tx)
        .await?
        .rows_affected;
    out.cases += case::Entity::delete_many()
        .filter(case::Column::TenantId.eq(t))
        .filter(case::Column::Id.eq(case_id))
        .exec(&**tx)
        .await?
        .rows_affected;
    Ok(())
}

/// Purges `target` in the tenant's transaction; audited.
pub async fn purge(tx: &TenantTx, clock: &dyn Clock, actor: &Actor, target: Target) -> Result<Purged> {
    let t = tx.tenant().0;
    let mut out = Purged::default();
    let described = match &target {
        Target::Case(id) => {
            drop_case(tx, *id, &mut out).await?;
            json!({"case": id})
        }
        Target::TelemetryBefore(before) => {
            loop {
                let ids: Vec<Uuid> = alert::Entity::find()
                    .filter(alert::Column::TenantId.eq(t))
                    .filter(alert::Column::ReceivedAt.lt(*before))
                    .limit(1_000)
                    .select_only()
                    .column(alert::Column::Id)
                    .into_tuple()
                    .all(&**tx)
                    .await?;
                if ids.is_empty() {
                    break;
                }
                drop_alerts(tx, ids, &mut out).await?;
            }
            out.sightings += entity_host::Entity::delete_many()
                .filter(entity_host::Column::TenantId.eq(t))
                .filter(entity_host::Column::LastSeen.lt(*before))
                .exec(&**tx)
                .await?
                .rows_affected;
            out.evidence += evidence::Entity::delete_many()
                .filter(evidence::Column::TenantId.eq(t))
                .filter(evidence::Column::CollectedAt.lt(*before))
                .exec(&**tx)
                .await?
                .rows_affected;
            json!({"telemetry_before": before})
        }
        Target::Entity { kind, value } => {
            let v = observables::normalize(*kind, value)
                .ok_or_else(|| Error::Invalid(format!("not a valid {} value", kind.as_str())))?;
            let ids: Vec<Uuid> = observable::Entity::find()
                .filter(observable::Column::TenantId.eq(t))
                .filter(observable::Column::Kind.eq(kind.as_str()))
                .filter(observable::Column::Value.eq(&v))
                .select_only()
                .column(observable::Column::AlertId)
                .distinct()
                .into_tuple()
                .all(&**tx)
                .await?;
            drop_alerts(tx, ids, &mut out).await?;
            let mut sightings = entity_host::Entity::delete_many()
                .filter(entity_host::Column::TenantId.eq(t))
                .filter(entity_host::Column::Kind.eq(kind.as_str()))
                .filter(entity_host::Column::Value.eq(&v));
            if *kind == Kind::Host {
                sightings = entity_host::Entity::delete_many()
                    .filter(entity_host::Column::TenantId.eq(t))
                    .filter(
                        sea_orm::Condition::any()
                            .add(
                                sea_orm::Condition::all()
                                    .add(entity_host::Column::Kind.eq(kind.as_str()))
                                    .add(entity_host::Column::Value.eq(&v)),
                            )
                            .add(entity_host::Column::Host.eq(&v)),
                    );
            }
            out.sightings += sightings.exec(&**tx).await?.rows_affected;
            out.case_entities += case_entity::Entity::delete_many()
                .filter(case_entity::Column::TenantId.eq(t))
                .filter(case_entity::Column::Kind.eq(kind.as_str()))
                .filter(case_entity::Column::Value.eq(&v))
                .exec(&**tx)
                .await?
                .rows_affected;
            out.iocs += ioc::Entity::delete_many()
                .filter(ioc::Column::TenantId.eq(t))
                .filter(ioc::Column::Kind.eq(kind.as_str()))
                .filter(ioc::Column::Value.eq(&v))
                .exec(&**tx)
                .await?
                .rows_affected;
            // Evidence about the entity, or whose vendor answer names it.
            out.evidence += evidence::Entity::delete_many()
                .filter(evidence::Column::TenantId.eq(t))
                .filter(
                    sea_orm::Condition::any()
                        .add(evidence::Column::Subject.eq(format!("{}:{v}", kind.as_str())))
                        .add(evidence::Column::Response.like(
                            sea_orm::sea_query::LikeExpr::new(format!("%{}%", like_escape(&v))).escape('\\'),
                        )),
                )
                .exec(&**tx)
                .await?
                .rows_affected;
            // Comments that name it (case-insensitively: a person types
            // a host or an address as it comes).
            {
                use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
                out.comments += case_comment::Entity::delete_many()
                    .filter(case_comment::Column::TenantId.eq(t))
                    .filter(
                        Expr::expr(Func::lower(Expr::col(case_comment::Column::Body))).like(
                            LikeExpr::new(format!("%{}%", like_escape(&v.to_lowercase()))).escape('\\'),
                        ),
                    )
                    .exec(&**tx)
                    .await?
                    .rows_affected;
            }
            json!({"entity": {"kind": kind.as_str(), "value_sha256": hex::encode(Sha256::digest(v.as_bytes()))}})
        }
    };
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "data.purge",
            target: format!("tenant:{}", tx.tenant()),
            summary: json!({"what": described, "deleted": out}),
        },
    )
    .await?;
    Ok(out)
}

/// `s` with LIKE's wildcards and the escape character escaped.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
