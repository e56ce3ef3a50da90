//! Webhook ingest: `POST /api/v1/ingest/{integration}` with
//! `X-Vigil-Timestamp` (unix seconds) and
//! `X-Vigil-Signature: sha256=HEX(HMAC-SHA256(secret, timestamp + "." + body))`.
//! The signature is checked in constant time against the integration's
//! signing secret (decrypted from the vault), within a 5-minute replay
//! window. The body is one alert or a JSON array of them; every alert is
//! checked before any is stored (all or nothing); each is stored verbatim
//! (the exact bytes received for it) with its detected format; a redelivery
//! of the same source alert is a duplicate, stored once.

use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use vigil_integrations::Kind;

use crate::audit::{self, Actor, Event};
use crate::connect::integrations;
use crate::secrets::credentials::MasterKey;
use crate::secrets::vault;
use crate::store::Store;
use crate::store::entity::{alert, observable};
use crate::{Clock, Error, Result, TenantId};

/// How far a delivery's timestamp may be from now.
pub const REPLAY_WINDOW_SECS: i64 = 300;
/// Most alerts one delivery may carry.
pub const MAX_BATCH: usize = 5_000;
/// Observables one alert keeps (the first ones in document order); how
/// many more it carried is noted on the alert (`observables_truncated`).
pub const MAX_OBSERVABLES_PER_ALERT: usize = 1_000;
/// Observables one delivery keeps in all; alerts past the budget keep none
/// beyond it (and say so), the alerts themselves are all stored.
pub const MAX_OBSERVABLES_PER_DELIVERY: usize = 50_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Ocsf,
    Ecs,
    Crowdstrike,
    Graylog,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Ocsf => "ocsf",
            Format::Ecs => "ecs",
            Format::Crowdstrike => "crowdstrike",
            Format::Graylog => "graylog",
        }
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Recognises the four accepted formats.
pub fn detect(v: &Value) -> Option<Format> {
    if v.get("class_uid").and_then(Value::as_u64) == Some(2004) {
        return Some(Format::Ocsf); // OCSF 1.x Detection Finding
    }
    if v.get("composite_id").is_some() || (v.get("cid").is_some() && v.pointer("/device/device_id").is_some())
    {
        return Some(Format::Crowdstrike);
    }
    if v.get("event_definition_id").is_some() || v.pointer("/event/event_definition_id").is_some() {
        return Some(Format::Graylog);
    }
    if v.get("@timestamp").is_some()
        && (v.pointer("/ecs/version").is_some() || v.pointer("/event/kind").is_some())
    {
        return Some(Format::Ecs);
    }
    None
}

/// The source's own id for the alert, where the format has one.
pub fn source_id(format: Format, v: &Value) -> Option<String> {
    let found = match format {
        Format::Ocsf => str_at(v, "/finding_info/uid").or_else(|| str_at(v, "/metadata/uid")),
        Format::Ecs => str_at(v, "/event/id"),
        Format::Crowdstrike => str_at(v, "/composite_id").or_else(|| str_at(v, "/id")),
        Format::Graylog => str_at(v, "/event/id").or_else(|| str_at(v, "/id")),
    };
    found.map(str::to_owned)
}

pub use vigil_integrations::signing::{sign, verify_signature};

/// One delivery as received.
#[derive(Debug)]
pub struct Delivery<'a> {
    pub integration: Uuid,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
    pub source_ip: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Accepted {
    pub accepted: usize,
    pub duplicates: usize,
    pub alert_ids: Vec<Uuid>,
}

async fn tenant_of(store: &Store, integration: Uuid) -> Result<TenantId> {
    store
        .owner_tenant("vigil_integration_tenant", "integrations", integration)
        .await?
        .ok_or(Error::NotFound("integration"))
}

async fn rejected(
    store: &Store,
    clock: &dyn Clock,
    tenant: TenantId,
    d: &Delivery<'_>,
    why: &'static str,
) -> Result<Error> {
    let tx = store.begin_tenant(tenant).await?;
    let actor = Actor {
        label: format!("webhook:{}", d.integration),
        role: None,
        source_ip: d.source_ip.clone(),
    };
    audit::record(
        &tx,
        clock,
        &actor,
        Event {
            action: "ingest.rejected",
            target: format!("integration:{}", d.integration),
            summary: serde_json::json!({"reason": why}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Error::Unauthenticated(why))
}

/// Authenticates, validates and stores a delivery in one transaction of
/// its own.
pub async fn receive(
    store: &Store,
    clock: &dyn Clock,
    master: &MasterKey,
    d: Delivery<'_>,
) -> Result<Accepted> {
    let (tenant, checked) = verify(store, clock, master, &d).await?;
    let tx = store.begin_tenant(tenant).await?;
    let out = store_checked(&tx, clock, d.integration, checked).await?;
    tx.commit().await?;
    Ok(out)
}

/// Authenticates a delivery (a refusal is audited) and checks every alert
/// it carries; stores nothing. The web handler hands the result to
/// [`crate::pipeline::ingest_queue::IngestQueue`].
pub async fn verify(
    store: &Store,
    clock: &dyn Clock,
    master: &MasterKey,
    d: &Delivery<'_>,
) -> Result<(TenantId, Vec<Checked>)> {
    let tenant = tenant_of(store, d.integration).await?;
    let tx = store.begin_tenant_read(tenant).await?;
    let integ = integrations::get(&tx, d.integration).await?;
    if integ.kind != Kind::Webhook {
        return Err(Error::NotFound("webhook integration"));
    }
    let (Some(ts), Some(sig)) = (d.timestamp, d.signature) else {
        drop(tx);
        return Err(rejected(
            store,
            clock,
            tenant,
            d,
            "missing X-Vigil-Timestamp or X-Vigil-Signature",
        )
        .await?);
    };
    let secret = match vault::open(&tx, clock, master, d.integration).await {
        Ok(s) => s,
        Err(Error::NotFound(_)) => {
            drop(tx);
            return Err(rejected(
                store,
                clock,
                tenant,
                d,
                "this webhook has no signing secret (revoked)",
            )
            .await?);
        }
        Err(e) => return Err(e),
    };
    // Only read: nothing to keep.
    drop(tx);
    if !verify_signature(secrecy::ExposeSecret::expose_secret(&secret), ts, d.body, sig) {
        return Err(rejected(store, clock, tenant, d, "signature does not match").await?);
    }
    let fresh = ts
        .trim()
        .parse::<i64>()
        .is_ok_and(|t| (clock.now().timestamp() - t).abs() <= REPLAY_WINDOW_SECS);
    if !fresh {
        return Err(rejected(store, clock, tenant, d, "timestamp outside the 5-minute window").await?);
    }

    // Parse and check every alert before storing any.
    let raws = split_delivery(d.body)?;
    let declared = integ
        .config
        .get("format")
        .and_then(Value::as_str)
        .unwrap_or("auto");
    let checked = check(declared, &raws)?;
    Ok((tenant, checked))
}

/// A delivery's body as the exact text of each alert it carries: one JSON
/// object, or an array of 1 to [`MAX_BATCH`] of them (serde_json refuses
/// nesting deeper than 128 levels).
pub fn split_delivery(body: &[u8]) -> Result<Vec<&str>> {
    let text = std::str::from_utf8(body).map_err(|_| Error::Invalid("body is not UTF-8".into()))?;
    let items: Vec<&RawValue> = match text.trim_start().as_bytes().first() {
        Some(b'[') => serde_json::from_str::<Vec<&RawValue>>(text)
            .map_err(|e| Error::Invalid(format!("body is not a JSON array of alerts: {e}")))?,
        Some(b'{') => vec![
            serde_json::from_str::<&RawValue>(text)
                .map_err(|e| Error::Invalid(format!("body is not JSON: {e}")))?,
        ],
        _ => {
            return Err(Error::Invalid(
                "body must be a JSON object or an array of objects".into(),
            ));
        }
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(Error::Invalid(format!(
            "a delivery carries 1 to {MAX_BATCH} alerts"
        )));
    }
    Ok(items.iter().map(|r| r.get()).collect())
}

/// One alert that passed every check, ready to store.
#[derive(Debug)]
pub struct Checked {
    format: Format,
    source_id: Option<String>,
    dedup_key: String,
    raw: String,
    observables: Vec<crate::pipeline::observables::Observable>,
    /// Observables beyond the bounds, not kept.
    truncated: usize,
    parsed: Value,
}

impl Checked {
    /// What makes a redelivery a duplicate: the format and source id, or
    /// the canonical JSON's hash when the alert carries no id.
    pub fn dedup_key(&self) -> &str {
        &self.dedup_key
    }
}

/// Parses and checks every alert (each the exact text received) before any
/// is stored: all or nothing.
pub fn check(declared: &str, raws: &[&str]) -> Result<Vec<Checked>> {
    let mut checked = Vec::with_capacity(raws.len());
    let mut budget = MAX_OBSERVABLES_PER_DELIVERY;
    for (n, raw) in raws.iter().enumerate() {
        let v: Value = serde_json::from_str(raw).map_err(|e| Error::Invalid(format!("alert {n}: {e}")))?;
        if !v.is_object() {
            return Err(Error::Invalid(format!("alert {n} is not a JSON object")));
        }
        let format = match declared {
            "auto" => detect(&v).ok_or_else(|| {
                Error::Invalid(format!(
                    "alert {n}: unknown format (not OCSF, ECS, CrowdStrike or Graylog)"
                ))
            })?,
            "ocsf" => Format::Ocsf,
            "ecs" => Format::Ecs,
            "crowdstrike" => Format::Crowdstrike,
            _ => Format::Graylog,
        };
        // Derived text is stored as text columns: no control characters
        // (NUL cannot be stored on PostgreSQL). The raw alert stays as received.
        let sid = source_id(format, &v).map(|s| crate::text::storable(&s).into_owned());
        let key = match &sid {
            Some(id) => hex::encode(Sha256::digest(format!("{}:{id}", format.as_str()).as_bytes())),
            None => hex::encode(Sha256::digest(crate::engine::canonical_json(&v).as_bytes())),
        };
        let mut observables = crate::pipeline::observables::extract(&v);
        let keep = observables.len().min(MAX_OBSERVABLES_PER_ALERT).min(budget);
        let truncated = observables.len() - keep;
        observables.truncate(keep);
        budget -= keep;
        for o in &mut observables {
            if let std::borrow::Cow::Owned(v) = crate::text::storable(&o.value) {
                o.value = v;
            }
            if let std::borrow::Cow::Owned(p) = crate::text::storable(&o.pointer) {
                o.pointer = p;
            }
        }
        checked.push(Checked {
            format,
            source_id: sid,
            dedup_key: key,
            raw: (*raw).to_owned(),
            observables,
            truncated,
            parsed: v,
        });
    }
    Ok(checked)
}

/// Stores checked alerts of one integration in the caller's transaction:
/// verbatim, deduplicated by source id, observables extracted, correlated.
/// A fixed number of statements per delivery, not per alert: one lookup of
/// the delivery's dedup keys, multi-row INSERTs of the new alerts and their
/// observables, then [`crate::pipeline::correlate::correlate_batch`]. A redelivery
/// inside the same delivery is a duplicate of its first copy. A concurrent
/// delivery that stored one of these alerts first makes this one fail whole
/// (409, nothing stored; the sender retries and gets duplicates).
pub async fn store_checked(
    tx: &crate::store::TenantTx,
    clock: &dyn Clock,
    integration: Uuid,
    checked: Vec<Checked>,
) -> Result<Accepted> {
    let refs: Vec<&Checked> = checked.iter().collect();
    let stored = store_items(tx, clock, integration, &refs).await?;
    Ok(Accepted::of(&stored))
}

impl Accepted {
    /// The answer for a delivery from what [`store_items`] said of each of
    /// its alerts.
    pub fn of(stored: &[Stored]) -> Self {
        let duplicates = stored.iter().filter(|s| s.duplicate).count();
        Accepted {
            accepted: stored.len() - duplicates,
            duplicates,
            alert_ids: stored.iter().map(|s| s.id).collect(),
        }
    }
}

/// What became of one checked alert: its id, and whether it was a
/// duplicate of one stored before (or earlier in the same call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub id: Uuid,
    pub duplicate: bool,
}

/// [`store_checked`] for alerts of one integration that may come from
/// several deliveries ([`crate::pipeline::ingest_queue`] coalesces them): one result
/// per alert, in order.
pub async fn store_items(
    tx: &crate::store::TenantTx,
    clock: &dyn Clock,
    integration: Uuid,
    checked: &[&Checked],
) -> Result<Vec<Stored>> {
    use std::collections::HashMap;
    const CHUNK: usize = 1_000;
    let tenant = tx.tenant();
    let now = clock.now();
    let mut out: Vec<Stored> = Vec::with_capacity(checked.len());
    let settings = crate::pipeline::correlate::settings(tx).await?;

    // Which of these were stored before (one lookup per 500 keys).
    let mut known: HashMap<String, Uuid> = HashMap::new();
    let keys: Vec<&str> = checked.iter().map(|c| c.dedup_key.as_str()).collect();
    for chunk in keys.chunks(500) {
        let rows = alert::Entity::find()
            .select_only()
            .column(alert::Column::DedupKey)
            .column(alert::Column::Id)
            .filter(alert::Column::TenantId.eq(tenant.0))
            .filter(alert::Column::IntegrationId.eq(integration))
            .filter(alert::Column::DedupKey.is_in(chunk.iter().copied()))
            .into_tuple::<(String, Uuid)>()
            .all(&**tx)
            .await?;
        known.extend(rows);
    }
    let mut fresh: Vec<(Uuid, &Checked)> = Vec::with_capacity(checked.len());
    for &c in checked {
        if let Some(id) = known.get(&c.dedup_key) {
            out.push(Stored {
                id: *id,
                duplicate: true,
            });
            continue;
        }
        let id = Uuid::now_v7();
        known.insert(c.dedup_key.clone(), id);
        out.push(Stored { id, duplicate: false });
        fresh.push((id, c));
    }
    if fresh.is_empty() {
        return Ok(out);
    }

    let placed: Vec<crate::pipeline::timeline::Placement> = fresh
        .iter()
        .map(|(_, c)| crate::pipeline::timeline::place(c.format.as_str(), &c.parsed, now))
        .collect();
    let rows: Vec<alert::ActiveModel> = fresh
        .iter()
        .zip(&placed)
        .map(|((id, c), p)| alert::ActiveModel {
            id: Set(*id),
            tenant_id: Set(tenant.0),
            integration_id: Set(integration),
            format: Set(c.format.as_str().to_owned()),
            source_id: Set(c.source_id.clone()),
            dedup_key: Set(c.dedup_key.clone()),
            raw: Set(c.raw.clone()),
            received_at: Set(now),
            event_at: Set(Some(p.at)),
            placed_by: Set(p.placed_by.to_owned()),
            observables_truncated: Set(i32::try_from(c.truncated).unwrap_or(i32::MAX)),
        })
        .collect();
    for chunk in rows.chunks(CHUNK) {
        alert::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&**tx)
            .await
            .map_err(|e| match Error::from_insert(e, "alert") {
                Error::Conflict(_) => Error::Conflict(
                    "a concurrent delivery stored one of these alerts first; nothing was stored, retry the delivery"
                        .into(),
                ),
                e => e,
            })?;
    }
    let obs: Vec<observable::ActiveModel> = fresh
        .iter()
        .flat_map(|(id, c)| {
            c.observables.iter().map(move |o| observable::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(tenant.0),
                alert_id: Set(*id),
                kind: Set(o.kind.as_str().to_owned()),
                value: Set(o.value.clone()),
                pointer: Set(o.pointer.clone()),
            })
        })
        .collect();
    for chunk in obs.chunks(CHUNK) {
        observable::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&**tx)
            .await?;
    }
    let new: Vec<crate::pipeline::correlate::NewAlert<'_>> = fresh
        .iter()
        .zip(&placed)
        .map(|((id, c), p)| crate::pipeline::correlate::NewAlert {
            id: *id,
            raw: &c.parsed,
            observables: &c.observables,
            at: p.at,
        })
        .collect();
    let mut touched = crate::pipeline::correlate::correlate_batch(tx, clock, &settings, &new).await?;
    touched.sort();
    touched.dedup();
    crate::pipeline::correlate::touch(tx, &touched, now).await?;
    crate::pipeline::investigation::schedule(tx, clock, &touched).await?;
    Ok(out)
}

/// One alert of the tenant (a citation opened), with the case that holds it.
pub async fn get(tx: &crate::store::TenantTx, id: Uuid) -> Result<(alert::Model, Option<Uuid>)> {
    let a = alert::Entity::find_by_id(id)
        .filter(alert::Column::TenantId.eq(tx.tenant().0))
        .one(&**tx)
        .await?
        .ok_or(Error::NotFound("alert"))?;
    let case = crate::store::entity::case_alert::Entity::find()
        .filter(crate::store::entity::case_alert::Column::TenantId.eq(tx.tenant().0))
        .filter(crate::store::entity::case_alert::Column::AlertId.eq(id))
        .one(&**tx)
        .await?
        .map(|l| l.case_id);
    Ok((a, case))
}

/// Alerts of the tenant, newest first (raw bytes as received).
pub async fn list(tx: &crate::store::TenantTx, limit: u64, offset: u64) -> Result<Vec<alert::Model>> {
    use sea_orm::{QueryOrder, QuerySelect};
    Ok(alert::Entity::find()
        .filter(alert::Column::TenantId.eq(tx.tenant().0))
        .order_by_desc(alert::Column::ReceivedAt)
        .order_by_desc(alert::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(&**tx)
        .await?)
}

/// The observables of an alert (kind, value, evidence pointer).
pub async fn observables_of(
    tx: &crate::store::TenantTx,
    alert: Uuid,
) -> Result<Vec<crate::pipeline::observables::Observable>> {
    use sea_orm::QueryOrder;
    let rows = observable::Entity::find()
        .filter(observable::Column::TenantId.eq(tx.tenant().0))
        .filter(observable::Column::AlertId.eq(alert))
        .order_by_asc(observable::Column::Id)
        .all(&**tx)
        .await?;
    rows.into_iter()
        .map(|r| {
            let kind = match r.kind.as_str() {
                "host" => crate::pipeline::observables::Kind::Host,
                "user" => crate::pipeline::observables::Kind::User,
                "ip" => crate::pipeline::observables::Kind::Ip,
                "domain" => crate::pipeline::observables::Kind::Domain,
                "url" => crate::pipeline::observables::Kind::Url,
                "file_hash" => crate::pipeline::observables::Kind::FileHash,
                "process" => crate::pipeline::observables::Kind::Process,
                "email" => crate::pipeline::observables::Kind::Email,
                other => {
                    return Err(Error::Invalid(format!(
                        "stored observable kind `{other}` is unknown"
                    )));
                }
            };
            Ok(crate::pipeline::observables::Observable::stored(
                kind, r.value, r.pointer,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn formats_and_ids() {
        let ocsf = json!({"class_uid": 2004, "finding_info": {"uid": "f-1"}, "metadata": {"uid": "m-1"}});
        let ecs = json!({"@timestamp": "2026-11-22T10:00:00Z", "ecs": {"version": "8.11"}, "event": {"id": "e-1", "kind": "alert"}});
        let cs = json!({"composite_id": "cid:ind:1", "cid": "c", "device": {"device_id": "d"}});
        let gl = json!({"event_definition_id": "def", "event": {"id": "g-1", "event_definition_id": "def"}});
        assert_eq!(detect(&ocsf), Some(Format::Ocsf));
        assert_eq!(detect(&ecs), Some(Format::Ecs));
        assert_eq!(detect(&cs), Some(Format::Crowdstrike));
        assert_eq!(detect(&gl), Some(Format::Graylog));
        assert_eq!(detect(&json!({"hello": "world"})), None);
        assert_eq!(source_id(Format::Ocsf, &ocsf).as_deref(), Some("f-1"));
        assert_eq!(source_id(Format::Ecs, &ecs).as_deref(), Some("e-1"));
        assert_eq!(source_id(Format::Crowdstrike, &cs).as_deref(), Some("cid:ind:1"));
        assert_eq!(source_id(Format::Graylog, &gl).as_deref(), Some("g-1"));
    }

    #[test]
    fn signatures() {
        let sig = sign(b"k", "1700000000", b"{}");
        assert!(verify_signature(b"k", "1700000000", b"{}", &sig));
        assert!(
            !verify_signature(b"k", "1700000001", b"{}", &sig),
            "timestamp is signed"
        );
        assert!(
            !verify_signature(b"k", "1700000000", b"{ }", &sig),
            "body is signed"
        );
        assert!(!verify_signature(b"other", "1700000000", b"{}", &sig));
        for bad in ["", "sha256=", "sha256=zz", "md5=00", &sig[7..]] {
            assert!(!verify_signature(b"k", "1700000000", b"{}", bad), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn detection_never_panics(s in ".{0,200}") {
            if let Ok(v) = serde_json::from_str::<Value>(&s)
                && let Some(f) = detect(&v)
            {
                let _ = source_id(f, &v);
            }
        }
    }
}
