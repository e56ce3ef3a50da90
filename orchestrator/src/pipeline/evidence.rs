//! Evidence the investigation collects through a tenant's integrations'
//! **read** scopes, beyond the alerts themselves: CrowdStrike's device record
//! of each host of the case (`hosts:read`), and Graylog's messages naming
//! each host, user and address of the case within the case's window
//! (`messages:search`). Each vendor response is stored verbatim as an
//! evidence item of the case (its integration, the request, the time), so a
//! draft can cite it by JSON pointer like an alert; a lookup that fails is
//! retried by the engine (the step fails transiently and runs again with
//! backoff, fetching only what is still missing), and on the last try is
//! recorded as "not collected" with the reason — the round goes on.
//!
//! An item an earlier round of the case collected within [`FRESH`] answers
//! the same lookup again. Bounds: at most [`MAX_SUBJECTS`] subjects per integration, every call
//! within the client's timeout and all of them within [`DEADLINE`] (inside
//! the step's lease), a response over [`MAX_ITEM`] bytes is not kept.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;
use vigil_integrations::Kind as IntegrationKind;
use vigil_integrations::client::{ClientError, Lookup};

use crate::connect::connectors::Connectors;
use crate::store::TenantTx;
use crate::store::entity::{alert, case_alert, evidence, integration, observable};
use crate::{Clock, Error, Result, TenantId};

/// Subjects looked up per integration and round.
pub const MAX_SUBJECTS: usize = 10;
/// A response larger than this is not kept (recorded as not collected).
pub const MAX_ITEM: usize = 1024 * 1024;
/// All lookups of one collection finish within this (the step's lease is 30 s).
pub const DEADLINE: StdDuration = StdDuration::from_secs(20);
/// Each vendor call's own bound within the deadline.
pub const CALL_TIMEOUT: StdDuration = StdDuration::from_secs(10);
/// Tries of the collect step before a failing lookup is recorded as not collected.
pub const TRIES: i32 = 3;
/// How far around the case's first and last sighting Graylog is searched.
pub const WINDOW_MARGIN: Duration = Duration::hours(1);
/// An item collected this recently by an earlier round of the case is used
/// again, not asked for again (a burst of alerts does not hammer the
/// vendors' APIs; their rate limits are per tenant).
pub const FRESH: Duration = Duration::minutes(10);
/// Messages per Graylog search.
pub const MESSAGES: usize = 50;

pub const CROWDSTRIKE_DEVICE: &str = "crowdstrike.device";
pub const CROWDSTRIKE_IDENTITY: &str = "crowdstrike.identity";
pub const GRAYLOG_MESSAGES: &str = "graylog.messages";

/// One evidence item as people and the API see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = EvidenceItem)]
pub struct Item {
    pub id: Uuid,
    pub case_id: Uuid,
    pub round: i64,
    pub integration_id: Uuid,
    /// `crowdstrike.device`, `crowdstrike.identity` or `graylog.messages`.
    pub source: String,
    /// What was looked up, as `kind:value` (e.g. `host:ws-042`).
    pub subject: String,
    /// The vendor calls made, on one line.
    pub request: String,
    /// `collected` or `not_collected`.
    pub status: String,
    /// The vendor's answer (verbatim JSON) when collected.
    pub response: Option<Value>,
    /// Why it was not collected.
    pub error: Option<String>,
    pub collected_at: DateTime<Utc>,
}

impl From<evidence::Model> for Item {
    fn from(m: evidence::Model) -> Self {
        Item {
            id: m.id,
            case_id: m.case_id,
            round: m.round,
            integration_id: m.integration_id,
            source: m.source,
            subject: m.subject,
            request: m.request,
            status: m.status,
            response: m.response.as_deref().and_then(|t| serde_json::from_str(t).ok()),
            error: m.error,
            collected_at: m.collected_at,
        }
    }
}

/// One evidence item of the tenant.
pub async fn get(tx: &TenantTx, id: Uuid) -> Result<Item> {
    evidence::Entity::find_by_id(id)
        .filter(evidence::Column::TenantId.eq(tx.tenant().0))
        .one(&**tx)
        .await?
        .map(Item::from)
        .ok_or(Error::NotFound("evidence"))
}

/// The case's evidence items, oldest first.
pub async fn of_case(tx: &TenantTx, case_id: Uuid) -> Result<Vec<Item>> {
    Ok(evidence::Entity::find()
        .filter(evidence::Column::TenantId.eq(tx.tenant().0))
        .filter(evidence::Column::CaseId.eq(case_id))
        .order_by_asc(evidence::Column::CollectedAt)
        .order_by_asc(evidence::Column::Subject)
        .all(&**tx)
        .await?
        .into_iter()
        .map(Item::from)
        .collect())
}

/// The case's collected items parsed, by id (what citations may point into).
pub async fn documents(tx: &TenantTx, case_id: Uuid) -> Result<BTreeMap<Uuid, Value>> {
    Ok(of_case(tx, case_id)
        .await?
        .into_iter()
        .filter_map(|i| i.response.map(|r| (i.id, r)))
        .collect())
}

/// The case's collected items, the newest round's per (integration,
/// subject): what the tools say of the case now.
pub async fn newest(tx: &TenantTx, case_id: Uuid) -> Result<Vec<Item>> {
    let mut by: BTreeMap<(Uuid, String), Item> = BTreeMap::new();
    for i in of_case(tx, case_id).await? {
        if i.response.is_none() {
            continue;
        }
        let k = (i.integration_id, i.subject.clone());
        if by.get(&k).is_none_or(|o| o.round < i.round) {
            by.insert(k, i);
        }
    }
    Ok(by.into_values().collect())
}

/// One event an evidence item tells of (a message Graylog holds), at the
/// time the message carries, pointing at it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = LoggedEvent)]
pub struct Event {
    pub at: DateTime<Utc>,
    /// Where the event was logged (the message's `source`).
    pub source: String,
    pub summary: String,
    pub evidence_id: Uuid,
    /// JSON pointer of the message's text in the item.
    pub pointer: String,
}

/// The enrichment events of the case: the messages of the newest Graylog
/// searches, each once (the same message found by several subjects is one
/// event), oldest first. A message without a readable time is left out.
pub fn events(items: &[Item]) -> Vec<Event> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for i in items.iter().filter(|i| i.source == GRAYLOG_MESSAGES) {
        let Some(list) = i
            .response
            .as_ref()
            .and_then(|d| d.pointer("/messages"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for (n, m) in list.iter().enumerate() {
            let field = |k: &str| m.pointer(&format!("/message/{k}"));
            let (Some(at), Some(text)) = (
                field("timestamp").and_then(crate::pipeline::timeline::parse_time),
                field("message").and_then(Value::as_str),
            ) else {
                continue;
            };
            let key = field("_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{at}|{text}"));
            if !seen.insert(key) {
                continue;
            }
            out.push(Event {
                at,
                source: field("source").and_then(Value::as_str).unwrap_or("?").to_owned(),
                summary: crate::text::title(text, 300, "message"),
                evidence_id: i.id,
                pointer: format!("/messages/{n}/message/message"),
            });
        }
    }
    out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.summary.cmp(&b.summary)));
    out
}

/// What one collection did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Collected {
    /// Items stored now or by an earlier try of this round.
    pub collected: usize,
    /// Lookups answered by an item an earlier round collected within [`FRESH`].
    pub reused: usize,
    /// `subject: why` of each lookup recorded as not collected.
    pub not_collected: Vec<String>,
    /// Lookups that failed and are worth another try (nothing recorded yet).
    pub retry: Vec<String>,
    /// Why there was nothing to look up, if so.
    pub nothing: Option<String>,
}

struct Planned {
    integration: Uuid,
    kind: IntegrationKind,
    source: &'static str,
    subject: String,
}

/// The subjects of the case's alerts by kind (hosts, users, addresses, in
/// whatever role), most seen first, and the case's window of event time.
async fn subjects(
    tx: &TenantTx,
    case_id: Uuid,
) -> Result<(
    BTreeMap<String, Vec<String>>,
    Option<(DateTime<Utc>, DateTime<Utc>)>,
)> {
    use sea_orm::QuerySelect;
    let t = tx.tenant().0;
    let ids: Vec<Uuid> = case_alert::Entity::find()
        .filter(case_alert::Column::TenantId.eq(t))
        .filter(case_alert::Column::CaseId.eq(case_id))
        .select_only()
        .column(case_alert::Column::AlertId)
        .into_tuple()
        .all(&**tx)
        .await?;
    let mut window: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for chunk in ids.chunks(500) {
        let times: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = alert::Entity::find()
            .filter(alert::Column::TenantId.eq(t))
            .filter(alert::Column::Id.is_in(chunk.to_vec()))
            .select_only()
            .column(alert::Column::ReceivedAt)
            .column(alert::Column::EventAt)
            .into_tuple()
            .all(&**tx)
            .await?;
        for (received, event) in times {
            let at = event.unwrap_or(received);
            window = Some(match window {
                None => (at, at),
                Some((a, b)) => (a.min(at), b.max(at)),
            });
        }
        let obs: Vec<(String, String)> = observable::Entity::find()
            .filter(observable::Column::TenantId.eq(t))
            .filter(observable::Column::AlertId.is_in(chunk.to_vec()))
            .filter(observable::Column::Kind.is_in(["host", "user", "ip"]))
            .select_only()
            .column(observable::Column::Kind)
            .column(observable::Column::Value)
            .into_tuple()
            .all(&**tx)
            .await?;
        for k in obs {
            *seen.entry(k).or_default() += 1;
        }
    }
    let mut by_kind: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    for ((k, v), n) in seen {
        by_kind.entry(k).or_default().push((n, v));
    }
    let out = by_kind
        .into_iter()
        .map(|(k, mut vs)| {
            vs.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            (k, vs.into_iter().map(|(_, v)| v).collect())
        })
        .collect();
    Ok((out, window))
}

fn plan(integrations: &[integration::Model], subjects: &BTreeMap<String, Vec<String>>) -> Vec<Planned> {
    let mut out = Vec::new();
    let of = |k: &str| subjects.get(k).cloned().unwrap_or_default();
    let tagged = |k: &str| -> Vec<String> { of(k).into_iter().map(|v| format!("{k}:{v}")).collect() };
    for i in integrations {
        let Ok(kind) = i.kind.parse::<IntegrationKind>() else {
            continue;
        };
        let lists: Vec<(&'static str, Vec<String>)> = match kind {
            IntegrationKind::Crowdstrike => vec![
                (CROWDSTRIKE_DEVICE, tagged("host")),
                (CROWDSTRIKE_IDENTITY, tagged("user")),
            ],
            IntegrationKind::Graylog => {
                let mut l: Vec<String> = Vec::new();
                for k in ["host", "user", "ip"] {
                    l.extend(tagged(k));
                }
                vec![(GRAYLOG_MESSAGES, l)]
            }
            _ => continue,
        };
        for (source, list) in lists {
            for subject in list.into_iter().take(MAX_SUBJECTS) {
                out.push(Planned {
                    integration: i.id,
                    kind,
                    source,
                    subject,
                });
            }
        }
    }
    out
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An evidence source, opened once per collection: its credential is
/// decrypted once and its client (with CrowdStrike's OAuth token) serves
/// every subject.
enum Source {
    Falcon(vigil_integrations::crowdstrike::Falcon),
    Graylog(vigil_integrations::graylog::Graylog),
}

type Failure = (bool, String);

fn client_err(e: ClientError) -> Failure {
    (e.transient(), e.to_string())
}

async fn open(
    connectors: &Connectors,
    tenant: TenantId,
    p: &Planned,
) -> std::result::Result<Source, Failure> {
    let (config, kind, secret) = connectors
        .open(tenant, p.integration)
        .await
        .map_err(|e| match e {
            Error::NotFound("credential") => (false, "the integration has no credential: set one".to_owned()),
            Error::Db(_) => (true, e.to_string()),
            e => (false, e.to_string()),
        })?;
    if kind != p.kind {
        return Err((false, format!("the integration is {kind}, not {}", p.kind)));
    }
    let guard = connectors.guard(tenant, kind, p.integration);
    let http = connectors.http().clone();
    match kind {
        IntegrationKind::Crowdstrike => {
            vigil_integrations::crowdstrike::Falcon::new(&config, &secret, http, guard)
                .map(Source::Falcon)
                .map_err(client_err)
        }
        IntegrationKind::Graylog => vigil_integrations::graylog::Graylog::new(&config, &secret, http, guard)
            .map(Source::Graylog)
            .map_err(client_err),
        _ => Err((false, format!("{kind} is not an evidence source"))),
    }
}

async fn lookup(
    source: &Source,
    p: &Planned,
    window: (DateTime<Utc>, DateTime<Utc>),
) -> std::result::Result<Lookup, Failure> {
    let value = p.subject.split_once(':').map(|(_, v)| v).unwrap_or_default();
    let got = match source {
        Source::Falcon(c) if p.source == CROWDSTRIKE_IDENTITY => c.identity_entity(value).await,
        Source::Falcon(c) => c.device_details(value).await,
        Source::Graylog(c) => {
            c.search_messages(
                value,
                &stamp(window.0 - WINDOW_MARGIN),
                &stamp(window.1 + WINDOW_MARGIN),
                MESSAGES,
            )
            .await
        }
    };
    let got = got.map_err(client_err)?;
    if got.body.len() > MAX_ITEM {
        return Err((false, format!("the response is larger than {MAX_ITEM} bytes")));
    }
    Ok(got)
}

/// Collects what round `round` of the case still lacks. With `last` (the
/// step's last try) a failing lookup is recorded as not collected; before
/// that, transient failures are left for the next try ([`Collected::retry`]).
pub async fn collect(
    connectors: &Connectors,
    clock: &dyn Clock,
    tenant: TenantId,
    case_id: Uuid,
    round: i64,
    last: bool,
) -> Result<Collected> {
    let store = connectors.store();
    // 1. What to look up (no transaction is held while vendors answer).
    let tx = store.begin_tenant(tenant).await?;
    let integrations = integration::Entity::find()
        .filter(integration::Column::TenantId.eq(tenant.0))
        .filter(integration::Column::Kind.is_in(["crowdstrike", "graylog"]))
        .order_by_asc(integration::Column::CreatedAt)
        .all(&*tx)
        .await?;
    let (subjects, window) = subjects(&tx, case_id).await?;
    let earlier = evidence::Entity::find()
        .filter(evidence::Column::TenantId.eq(tenant.0))
        .filter(evidence::Column::CaseId.eq(case_id))
        .filter(evidence::Column::Round.eq(round))
        .all(&*tx)
        .await?;
    let collected_before = earlier.iter().filter(|e| e.status == "collected").count();
    let mut have: HashSet<(Uuid, String)> = earlier
        .into_iter()
        .map(|e| (e.integration_id, e.subject))
        .collect();
    let fresh: HashSet<(Uuid, String)> = evidence::Entity::find()
        .filter(evidence::Column::TenantId.eq(tenant.0))
        .filter(evidence::Column::CaseId.eq(case_id))
        .filter(evidence::Column::Round.ne(round))
        .filter(evidence::Column::Status.eq("collected"))
        .filter(evidence::Column::CollectedAt.gte(clock.now() - FRESH))
        .all(&*tx)
        .await?
        .into_iter()
        .map(|e| (e.integration_id, e.subject))
        .filter(|k| !have.contains(k))
        .collect();
    tx.commit().await?;
    let mut out = Collected::default();
    if integrations.is_empty() {
        out.nothing =
            Some("the tenant has no CrowdStrike or Graylog integration to read evidence from".into());
        return Ok(out);
    }
    let Some(window) = window else {
        out.nothing = Some("the case names no host, user or address to look up".into());
        return Ok(out);
    };
    let planned: Vec<Planned> = plan(&integrations, &subjects);
    out.collected = collected_before;
    out.reused = planned
        .iter()
        .filter(|p| fresh.contains(&(p.integration, p.subject.clone())))
        .count();
    have.extend(fresh);
    // 2. The lookups, one after another, all within the deadline.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut results = Vec::new();
    let mut sources: std::collections::HashMap<Uuid, std::result::Result<Source, Failure>> =
        std::collections::HashMap::new();
    for p in planned
        .iter()
        .filter(|p| !have.contains(&(p.integration, p.subject.clone())))
    {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let bound = left.min(CALL_TIMEOUT);
        let late = || (true, format!("no answer within {}s", bound.as_secs()));
        if let std::collections::hash_map::Entry::Vacant(v) = sources.entry(p.integration) {
            v.insert(
                tokio::time::timeout(bound, open(connectors, tenant, p))
                    .await
                    .unwrap_or_else(|_| Err(late())),
            );
        }
        let r = match sources.get(&p.integration) {
            Some(Ok(source)) => tokio::time::timeout(bound, lookup(source, p, window))
                .await
                .unwrap_or_else(|_| Err(late())),
            Some(Err(f)) => Err(f.clone()),
            None => Err((true, "not opened".to_owned())),
        };
        results.push((p, r));
    }
    // 3. What came back, stored; failures retried or recorded.
    let tx = store.begin_tenant(tenant).await?;
    let now = clock.now();
    for (p, r) in results {
        let (status, request, response, error) = match r {
            // Valid JSON holds no raw control character but whitespace: verbatim.
            Ok(l) => ("collected", l.request, Some(l.body), None),
            Err((transient, why)) if transient && !last => {
                out.retry.push(format!("{}: {why}", p.subject));
                continue;
            }
            Err((_, why)) => {
                out.not_collected.push(format!("{}: {why}", p.subject));
                (
                    "not_collected",
                    format!("{} of {}", p.source, p.subject),
                    None,
                    Some(why),
                )
            }
        };
        if status == "collected" {
            out.collected += 1;
        }
        evidence::Entity::insert(evidence::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tenant.0),
            case_id: Set(case_id),
            round: Set(round),
            integration_id: Set(p.integration),
            source: Set(p.source.to_owned()),
            subject: Set(crate::text::storable(&p.subject).into_owned()),
            request: Set(crate::text::storable(&request).into_owned()),
            status: Set(status.to_owned()),
            response: Set(response),
            error: Set(error.map(|e| crate::text::storable(&e).into_owned())),
            collected_at: Set(now),
        })
        .exec(&*tx)
        .await?;
    }
    tx.commit().await?;
    Ok(out)
}
