//! Correlation: alerts that share entities within a time window join one
//! case — union-find over the entity graph, kept in the database. A new
//! alert links to every open case holding an alert (within the window) that
//! shares a linking entity; when that is several cases, they merge into the
//! oldest. Provenance is kept: which entity joined each alert (and through
//! which alert), and where a merged case went (`merged_into`, audited).

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Alias, Cond, Expr, ExprTrait, OnConflict, Query, SelectStatement};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::audit::{self, Actor, Event};
use crate::engine::cases;
use crate::engine::state::{CaseState, Severity};
use crate::pipeline::observables::{Kind, Observable};
use crate::store::TenantTx;
use crate::store::entity::{alert, case, case_alert, case_entity, observable, tenant_control};
use crate::{Clock, Error, Result};

/// Alerts further apart than this do not join the same case.
pub const WINDOW: Duration = Duration::hours(24);
/// Entities weighing less do not link alerts on their own.
pub const MIN_WEIGHT: f32 = 0.5;

/// How strongly a shared entity says "same incident".
pub fn weight(kind: Kind) -> f32 {
    match kind {
        Kind::Host | Kind::Domain | Kind::Url | Kind::FileHash => 1.0,
        Kind::User | Kind::Email => 0.8,
        Kind::Ip => 0.6,
        // Process names (svchost.exe, bash) are shared by unrelated alerts.
        Kind::Process => 0.3,
    }
}

/// A tenant's correlation settings (Security Engineers tune them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Alerts further apart than this do not join one case (1 to 720 h).
    pub window_hours: i64,
    /// Entities weighing less do not link alerts (0 to 1).
    pub min_weight: f32,
    /// Weight per entity kind (0 to 1); kinds not listed keep the default.
    pub weights: BTreeMap<String, f32>,
    /// Entities that never link alerts (a shared proxy, a scanner).
    pub ignore: Vec<Ignored>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ignored {
    pub kind: String,
    pub value: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            window_hours: WINDOW.num_hours(),
            min_weight: MIN_WEIGHT,
            weights: BTreeMap::new(),
            ignore: Vec::new(),
        }
    }
}

impl Settings {
    pub fn window(&self) -> Duration {
        Duration::hours(self.window_hours)
    }
    pub fn weight(&self, kind: Kind) -> f32 {
        self.weights
            .get(kind.as_str())
            .copied()
            .unwrap_or_else(|| weight(kind))
    }
    /// Whether this entity links alerts under these settings.
    pub fn links(&self, o: &Observable) -> bool {
        self.weight(o.kind) >= self.min_weight
            && !self
                .ignore
                .iter()
                .any(|i| i.kind == o.kind.as_str() && i.value == o.value)
    }

    /// Checks ranges and normalizes the ignore list as extraction would.
    pub fn validated(mut self) -> Result<Self> {
        if !(1..=720).contains(&self.window_hours) {
            return Err(Error::Invalid("window_hours must be 1 to 720".into()));
        }
        if !(0.0..=1.0).contains(&self.min_weight) {
            return Err(Error::Invalid("min_weight must be 0 to 1".into()));
        }
        for (k, w) in &self.weights {
            k.parse::<Kind>()?;
            if !(0.0..=1.0).contains(w) {
                return Err(Error::Invalid(format!("weight of {k} must be 0 to 1")));
            }
        }
        if self.ignore.len() > 1000 {
            return Err(Error::Invalid("at most 1000 ignored entities".into()));
        }
        for i in &mut self.ignore {
            let kind: Kind = i.kind.parse()?;
            i.value = crate::pipeline::observables::normalize(kind, &i.value)
                .ok_or_else(|| Error::Invalid(format!("`{}` is not a valid {kind:?} value", i.value)))?;
        }
        self.ignore
            .sort_by(|a, b| (&a.kind, &a.value).cmp(&(&b.kind, &b.value)));
        self.ignore.dedup();
        Ok(self)
    }
}

/// The tenant's settings (defaults until set).
pub async fn settings(tx: &TenantTx) -> Result<Settings> {
    let row = tenant_control::Entity::find_by_id(tx.tenant().0)
        .one(&**tx)
        .await?;
    match row.and_then(|r| r.correlation) {
        Some(v) => {
            serde_json::from_value(v).map_err(|e| Error::Invalid(format!("stored correlation settings: {e}")))
        }
        None => Ok(Settings::default()),
    }
}

/// Replaces the tenant's settings. Audited with before and after; applies
/// to alerts from now on (cases already formed stay as they are).
pub async fn set_settings(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    new: Settings,
) -> Result<Settings> {
    let new = new.validated()?;
    let before = settings(tx).await?;
    let value = serde_json::to_value(&new).map_err(|e| Error::Invalid(e.to_string()))?;
    tenant_control::Entity::insert(tenant_control::ActiveModel {
        tenant_id: Set(tx.tenant().0),
        kill_switch_engaged_at: Set(None),
        kill_switch_engaged_by: Set(None),
        gate_quorum: Set(None),
        correlation: Set(Some(value)),
    })
    .on_conflict(
        OnConflict::column(tenant_control::Column::TenantId)
            .update_column(tenant_control::Column::Correlation)
            .to_owned(),
    )
    .exec_without_returning(&**tx)
    .await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "correlation.configure",
            target: format!("tenant:{}", tx.tenant()),
            summary: json!({"before": before, "after": new}),
        },
    )
    .await?;
    Ok(new)
}

/// A case title from the alert itself.
pub fn title(raw: &Value) -> String {
    let pick = [
        "/finding_info/title",
        "/description",
        "/message",
        "/event/message",
        "/rule/name",
    ]
    .iter()
    .find_map(|p| {
        raw.pointer(p)
            .and_then(Value::as_str)
            .map(|s| crate::text::title(s, crate::engine::cases::TITLE_MAX, ""))
            .filter(|s| !s.is_empty())
    });
    pick.unwrap_or_else(|| "Alert".to_owned())
}

/// Open cases in which a linking entity of the new alert was seen within
/// the window (one indexed lookup per entity in `case_entities`).
fn reachable(
    tx: &TenantTx,
    received_at: DateTime<Utc>,
    window: Duration,
    linking: &[&Observable],
) -> SelectStatement {
    let tenant = tx.tenant().0;
    let mut any = Cond::any();
    for o in linking {
        any = any.add(
            Cond::all()
                .add(Expr::col((case_entity::Entity, case_entity::Column::Kind)).eq(o.kind.as_str()))
                .add(Expr::col((case_entity::Entity, case_entity::Column::Value)).eq(o.value.clone())),
        );
    }
    Query::select()
        .columns([
            (case_entity::Entity, case_entity::Column::CaseId),
            (case_entity::Entity, case_entity::Column::Kind),
            (case_entity::Entity, case_entity::Column::Value),
            (case_entity::Entity, case_entity::Column::Pointer),
            (case_entity::Entity, case_entity::Column::ViaAlert),
        ])
        .from(case_entity::Entity)
        .inner_join(
            case::Entity,
            Expr::col((case::Entity, case::Column::Id))
                .equals((case_entity::Entity, case_entity::Column::CaseId)),
        )
        .and_where(Expr::col((case_entity::Entity, case_entity::Column::TenantId)).eq(tenant))
        .and_where(Expr::col((case::Entity, case::Column::TenantId)).eq(tenant))
        .and_where(Expr::col((case_entity::Entity, case_entity::Column::LastSeen)).gte(received_at - window))
        .and_where(Expr::col((case::Entity, case::Column::State)).eq(CaseState::Open.as_str()))
        .and_where(Expr::col((case::Entity, case::Column::MergedInto)).is_null())
        .cond_where(any)
        .to_owned()
}

/// Records that the alert's linking entities were seen in `case_id`.
async fn index(
    tx: &TenantTx,
    case_id: Uuid,
    alert_id: Uuid,
    seen: DateTime<Utc>,
    linking: &[&Observable],
) -> Result<()> {
    let mut rows: Vec<case_entity::ActiveModel> = Vec::with_capacity(linking.len());
    for o in linking {
        // One row per (kind, value): an alert may carry an entity twice.
        if rows
            .iter()
            .any(|r| r.kind.as_ref() == o.kind.as_str() && r.value.as_ref() == &o.value)
        {
            continue;
        }
        rows.push(case_entity::ActiveModel {
            tenant_id: Set(tx.tenant().0),
            kind: Set(o.kind.as_str().to_owned()),
            value: Set(o.value.clone()),
            case_id: Set(case_id),
            last_seen: Set(seen),
            via_alert: Set(alert_id),
            pointer: Set(o.pointer.clone()),
        });
    }
    upsert_index(tx, rows).await
}

/// Upserts entity index rows: a later sighting rewrites the row.
async fn upsert_index(tx: &TenantTx, rows: Vec<case_entity::ActiveModel>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    case_entity::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([
                case_entity::Column::TenantId,
                case_entity::Column::Kind,
                case_entity::Column::Value,
                case_entity::Column::CaseId,
            ])
            .update_columns([
                case_entity::Column::LastSeen,
                case_entity::Column::ViaAlert,
                case_entity::Column::Pointer,
            ])
            // Only a later sighting rewrites the row (no new row version
            // per alert of a batch that shares the entity).
            .action_and_where(
                Expr::col((case_entity::Entity, case_entity::Column::LastSeen))
                    .lt(Expr::col((Alias::new("excluded"), case_entity::Column::LastSeen))),
            )
            .to_owned(),
        )
        .exec_without_returning(&**tx)
        .await?;
    Ok(())
}

/// Moves a merged-away case's index rows to the survivor (latest sighting wins).
async fn merge_index(tx: &TenantTx, from: Uuid, into: Uuid) -> Result<()> {
    let rows = case_entity::Entity::find()
        .filter(case_entity::Column::TenantId.eq(tx.tenant().0))
        .filter(case_entity::Column::CaseId.eq(from))
        .all(&**tx)
        .await?;
    for r in rows {
        let existing = case_entity::Entity::find_by_id((r.tenant_id, r.kind.clone(), r.value.clone(), into))
            .one(&**tx)
            .await?;
        match existing {
            Some(e) if e.last_seen >= r.last_seen => {}
            Some(_) => {
                case_entity::Entity::update_many()
                    .col_expr(case_entity::Column::LastSeen, Expr::value(r.last_seen))
                    .col_expr(case_entity::Column::ViaAlert, Expr::value(r.via_alert))
                    .col_expr(case_entity::Column::Pointer, Expr::value(r.pointer.clone()))
                    .filter(case_entity::Column::TenantId.eq(r.tenant_id))
                    .filter(case_entity::Column::Kind.eq(r.kind.clone()))
                    .filter(case_entity::Column::Value.eq(r.value.clone()))
                    .filter(case_entity::Column::CaseId.eq(into))
                    .exec(&**tx)
                    .await?;
            }
            None => {
                case_entity::ActiveModel {
                    case_id: Set(into),
                    ..case_entity::ActiveModel::from(r.clone())
                }
                .insert(&**tx)
                .await?;
            }
        }
    }
    case_entity::Entity::delete_many()
        .filter(case_entity::Column::TenantId.eq(tx.tenant().0))
        .filter(case_entity::Column::CaseId.eq(from))
        .exec(&**tx)
        .await?;
    Ok(())
}

/// Follows `merged_into` to the surviving case.
async fn survivor(tx: &TenantTx, mut id: Uuid) -> Result<case::Model> {
    for _ in 0..32 {
        let c = cases::model(tx, id).await?;
        match c.merged_into {
            Some(next) => id = next,
            None => return Ok(c),
        }
    }
    cases::model(tx, id).await
}

/// Union-find over alert indices (path halving, union by rank).
#[derive(Debug, Clone)]
pub struct UnionFind {
    parent: Vec<u32>,
    rank: Vec<u8>,
}

impl UnionFind {
    pub fn new(n: usize) -> Self {
        Self {
            parent: (0..n as u32).collect(),
            rank: vec![0; n],
        }
    }

    pub fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] as usize != x {
            let grand = self.parent[self.parent[x] as usize];
            self.parent[x] = grand;
            x = grand as usize;
        }
        x
    }

    pub fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return;
        }
        match self.rank[ra].cmp(&self.rank[rb]) {
            std::cmp::Ordering::Less => self.parent[ra] = rb as u32,
            std::cmp::Ordering::Greater => self.parent[rb] = ra as u32,
            std::cmp::Ordering::Equal => {
                self.parent[rb] = ra as u32;
                self.rank[ra] = self.rank[ra].saturating_add(1);
            }
        }
    }
}

/// Correlation in memory: alerts that share a linking entity within
/// `window` of its previous sighting join one group (the rule the database
/// applies through `case_entities`). `entities[i]` are alert `i`'s linking
/// entities, `times[i]` its time. Returns each alert's group as the index of
/// the group's earliest alert. O(n log n) for the time sort, then one hash
/// lookup per entity occurrence and near-constant union-find.
pub fn group<K: std::hash::Hash + Eq + Clone>(
    times: &[DateTime<Utc>],
    entities: &[Vec<K>],
    window: Duration,
) -> Vec<usize> {
    let n = times.len().min(entities.len());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (times[i], i));
    let mut uf = UnionFind::new(n);
    let mut last: std::collections::HashMap<K, usize> = std::collections::HashMap::new();
    for &i in &order {
        for e in &entities[i] {
            match last.get_mut(e) {
                Some(prev) => {
                    if times[i] - times[*prev] <= window {
                        uf.union(i, *prev);
                    }
                    *prev = i;
                }
                None => {
                    last.insert(e.clone(), i);
                }
            }
        }
    }
    // Name each group by its earliest member.
    let mut first: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    let mut out = vec![0; n];
    for &i in &order {
        let r = uf.find(i);
        out[i] = *first.entry(r).or_insert(i);
    }
    out
}

/// One newly stored alert of a delivery, for [`correlate_batch`].
#[derive(Debug, Clone, Copy)]
pub struct NewAlert<'a> {
    pub id: Uuid,
    pub raw: &'a Value,
    pub observables: &'a [Observable],
}

/// Rows per multi-row INSERT (stays under SQLite's and PostgreSQL's bind
/// parameter limits for the widest table written here).
const CHUNK: usize = 1_000;

/// Places the newly stored alerts of one delivery (all received at
/// `received_at`) in cases; returns each alert's case. The same rule as one
/// alert at a time, in a fixed number of statements per delivery: the
/// delivery's alerts are grouped in memory ([`group`]); ONE indexed lookup
/// per 200 distinct entities finds the open cases they reach; each group
/// joins the oldest case it reaches (the others merge into it, audited) or
/// opens one; then the case links and the entity index are written with
/// multi-row INSERTs. Each alert's provenance names the entity (and alert)
/// it joined by. The caller marks the touched cases updated ([`touch`]).
pub async fn correlate_batch(
    tx: &TenantTx,
    clock: &dyn Clock,
    settings: &Settings,
    received_at: DateTime<Utc>,
    alerts: &[NewAlert<'_>],
) -> Result<Vec<Uuid>> {
    use std::collections::HashMap;
    let n = alerts.len();
    let now = clock.now();
    let linking: Vec<Vec<&Observable>> = alerts
        .iter()
        .map(|a| a.observables.iter().filter(|o| settings.links(o)).collect())
        .collect();
    let keys: Vec<Vec<(Kind, &str)>> = linking
        .iter()
        .map(|l| l.iter().map(|o| (o.kind, o.value.as_str())).collect())
        .collect();
    let roots = group(&vec![received_at; n], &keys, settings.window());
    serialize_tenant(tx).await?;

    // The first two alerts of the delivery carrying each entity (with that
    // alert's pointer): provenance inside the delivery.
    type Carriers<'o> = ((usize, &'o str), Option<(usize, &'o str)>);
    let mut carriers: HashMap<(Kind, &str), Carriers<'_>> = HashMap::new();
    let mut distinct: Vec<&Observable> = Vec::new();
    for (i, l) in linking.iter().enumerate() {
        for o in l {
            match carriers.get_mut(&(o.kind, o.value.as_str())) {
                None => {
                    carriers.insert((o.kind, o.value.as_str()), ((i, o.pointer.as_str()), None));
                    distinct.push(o);
                }
                Some((first, second)) => {
                    if first.0 != i && second.is_none() {
                        *second = Some((i, o.pointer.as_str()));
                    }
                }
            }
        }
    }

    // Open cases the delivery's entities reach (within the window).
    let mut hits: HashMap<(Kind, String), Vec<(Uuid, Value)>> = HashMap::new();
    let backend = tx.get_database_backend();
    for chunk in distinct.chunks(200) {
        let rows = tx
            .query_all_raw(backend.build(&reachable(tx, received_at, settings.window(), chunk)))
            .await?;
        for r in rows {
            let kind: String = r.try_get("", "kind")?;
            let Ok(kind) = kind.parse::<Kind>() else {
                continue;
            };
            let value: String = r.try_get("", "value")?;
            let why = json!({
                "kind": kind.as_str(),
                "value": value,
                "pointer": r.try_get::<String>("", "pointer")?,
                "via_alert": r.try_get::<Uuid>("", "via_alert")?,
            });
            hits.entry((kind, value))
                .or_default()
                .push((r.try_get::<Uuid>("", "case_id")?, why));
        }
    }

    let mut members: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut order: Vec<usize> = Vec::new();
    for (i, &r) in roots.iter().enumerate() {
        members
            .entry(r)
            .or_insert_with(|| {
                order.push(r);
                Vec::new()
            })
            .push(i);
    }
    let system = Actor {
        label: "system:correlation".into(),
        role: None,
        source_ip: None,
    };
    let mut models: HashMap<Uuid, case::Model> = HashMap::new();
    let mut redirected: HashMap<Uuid, Uuid> = HashMap::new();
    let follow = |redirected: &HashMap<Uuid, Uuid>, mut id: Uuid| {
        for _ in 0..64 {
            match redirected.get(&id) {
                Some(next) => id = *next,
                None => break,
            }
        }
        id
    };
    let mut case_of = vec![Uuid::nil(); n];
    let mut joined: Vec<Option<Value>> = vec![None; n];
    for root in order {
        let group = &members[&root];
        let mut found: Vec<(case::Model, Value)> = Vec::new();
        let mut own: HashMap<usize, Value> = HashMap::new();
        for &i in group {
            for o in &linking[i] {
                let Some(hs) = hits.get(&(o.kind, o.value.clone())) else {
                    continue;
                };
                for (cid, why) in hs {
                    own.entry(i).or_insert_with(|| why.clone());
                    let cid = follow(&redirected, *cid);
                    if found.iter().any(|(f, _)| f.id == cid) {
                        continue;
                    }
                    let c = match models.get(&cid) {
                        Some(c) => c.clone(),
                        None => {
                            let c = survivor(tx, cid).await?;
                            models.insert(cid, c.clone());
                            c
                        }
                    };
                    if c.state != CaseState::Open.as_str() || found.iter().any(|(f, _)| f.id == c.id) {
                        continue;
                    }
                    found.push((c, why.clone()));
                }
            }
        }
        let case_id = if found.is_empty() {
            cases::open(tx, clock, &system, &title(alerts[group[0]].raw), Severity::Medium)
                .await?
                .id
        } else {
            // Union: the oldest case survives; the others merge into it.
            found.sort_by_key(|(c, _)| (c.created_at, c.id));
            let keep = found[0].0.id;
            for (other, link) in found.iter().skip(1) {
                absorb(tx, clock, &system, alerts[group[0]].id, other.id, keep, link, now).await?;
                redirected.insert(other.id, keep);
            }
            keep
        };
        for (k, &i) in group.iter().enumerate() {
            case_of[i] = case_id;
            joined[i] = own.get(&i).cloned().or_else(|| {
                if found.is_empty() && k == 0 {
                    return None; // it opened the case
                }
                // Joined through another alert of this delivery sharing an entity.
                linking[i].iter().find_map(|o| {
                    let (first, second) = carriers.get(&(o.kind, o.value.as_str()))?;
                    let (j, pointer) = if first.0 != i { *first } else { (*second)? };
                    Some(json!({
                        "kind": o.kind.as_str(),
                        "value": o.value,
                        "pointer": pointer,
                        "via_alert": alerts[j].id,
                    }))
                })
            });
        }
    }
    // A case merged later in this delivery: its alerts go to the survivor.
    for c in &mut case_of {
        *c = follow(&redirected, *c);
    }

    let links: Vec<case_alert::ActiveModel> = (0..n)
        .map(|i| case_alert::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tx.tenant().0),
            case_id: Set(case_of[i]),
            alert_id: Set(alerts[i].id),
            joined_at: Set(now),
            joined_by: Set(joined[i].take()),
        })
        .collect();
    for chunk in links.chunks(CHUNK) {
        case_alert::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&**tx)
            .await?;
    }
    // The entity index: one row per (entity, case), naming the last alert
    // of the delivery that carried it.
    let mut index_rows: HashMap<(Kind, &str, Uuid), case_entity::ActiveModel> = HashMap::new();
    for (i, l) in linking.iter().enumerate() {
        for o in l {
            index_rows.insert(
                (o.kind, o.value.as_str(), case_of[i]),
                case_entity::ActiveModel {
                    tenant_id: Set(tx.tenant().0),
                    kind: Set(o.kind.as_str().to_owned()),
                    value: Set(o.value.clone()),
                    case_id: Set(case_of[i]),
                    last_seen: Set(received_at),
                    via_alert: Set(alerts[i].id),
                    pointer: Set(o.pointer.clone()),
                },
            );
        }
    }
    // In key order: concurrent writers of the same rows lock them in one order.
    let mut index_rows: Vec<_> = index_rows.into_iter().collect();
    index_rows.sort_by_key(|(k, _)| *k);
    let index_rows: Vec<case_entity::ActiveModel> = index_rows.into_iter().map(|(_, r)| r).collect();
    for chunk in index_rows.chunks(CHUNK) {
        upsert_index(tx, chunk.to_vec()).await?;
    }
    Ok(case_of)
}

/// Correlation of one tenant runs one delivery at a time (PostgreSQL: a
/// transaction-scoped advisory lock on the tenant, held to commit; SQLite's
/// write transaction already is). Two concurrent deliveries sharing a new
/// entity would otherwise each open a case for it, and their index upserts
/// could deadlock.
async fn serialize_tenant(tx: &TenantTx) -> Result<()> {
    if tx.get_database_backend() == sea_orm::DbBackend::Postgres {
        let b = tx.tenant().0.as_u64_pair();
        let key = (b.0 ^ b.1) as i64 ^ 0x7669_6769_6c63_6f72; // "vigilcor"
        tx.execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [key.into()],
        ))
        .await?;
    }
    Ok(())
}

/// Merges `other` into `keep` because `alert` shares `link` with both.
#[allow(clippy::too_many_arguments)]
async fn absorb(
    tx: &TenantTx,
    clock: &dyn Clock,
    system: &Actor,
    alert: Uuid,
    other: Uuid,
    keep: Uuid,
    link: &Value,
    now: DateTime<Utc>,
) -> Result<()> {
    case_alert::Entity::update_many()
        .col_expr(case_alert::Column::CaseId, Expr::value(keep))
        .filter(case_alert::Column::TenantId.eq(tx.tenant().0))
        .filter(case_alert::Column::CaseId.eq(other))
        .exec(&**tx)
        .await?;
    merge_index(tx, other, keep).await?;
    case::Entity::update_many()
        .col_expr(case::Column::MergedInto, Expr::value(keep))
        .col_expr(case::Column::UpdatedAt, Expr::value(now))
        .filter(case::Column::Id.eq(other))
        .filter(case::Column::TenantId.eq(tx.tenant().0))
        .exec(&**tx)
        .await?;
    audit::record(
        tx,
        clock,
        system,
        Event {
            action: "case.merge",
            target: format!("case:{other}"),
            summary: json!({"into": keep, "because": {"alert": alert, "shares": link}}),
        },
    )
    .await?;
    Ok(())
}

/// Marks cases updated (once per batch, not once per alert: a row updated
/// thousands of times in one transaction slows every later read of it).
pub async fn touch(tx: &TenantTx, cases: &[Uuid], now: DateTime<Utc>) -> Result<()> {
    if cases.is_empty() {
        return Ok(());
    }
    case::Entity::update_many()
        .col_expr(case::Column::UpdatedAt, Expr::value(now))
        .filter(case::Column::TenantId.eq(tx.tenant().0))
        .filter(case::Column::Id.is_in(cases.iter().copied()))
        .exec(&**tx)
        .await?;
    Ok(())
}

/// Rebuilds a case's entity index from its alerts (after a split).
async fn reindex(tx: &TenantTx, case_id: Uuid, settings: &Settings) -> Result<()> {
    case_entity::Entity::delete_many()
        .filter(case_entity::Column::TenantId.eq(tx.tenant().0))
        .filter(case_entity::Column::CaseId.eq(case_id))
        .exec(&**tx)
        .await?;
    let links = case_alert::Entity::find()
        .filter(case_alert::Column::TenantId.eq(tx.tenant().0))
        .filter(case_alert::Column::CaseId.eq(case_id))
        .all(&**tx)
        .await?;
    let mut alerts = alert::Entity::find()
        .filter(alert::Column::TenantId.eq(tx.tenant().0))
        .filter(alert::Column::Id.is_in(links.iter().map(|l| l.alert_id)))
        .all(&**tx)
        .await?;
    alerts.sort_by_key(|a| (a.received_at, a.id));
    for a in alerts {
        let obs: Vec<Observable> = observable::Entity::find()
            .filter(observable::Column::TenantId.eq(tx.tenant().0))
            .filter(observable::Column::AlertId.eq(a.id))
            .all(&**tx)
            .await?
            .into_iter()
            .filter_map(|o| {
                Some(Observable {
                    kind: o.kind.parse().ok()?,
                    value: o.value,
                    pointer: o.pointer,
                })
            })
            .collect();
        let linking: Vec<&Observable> = obs.iter().filter(|o| settings.links(o)).collect();
        index(tx, case_id, a.id, a.received_at, &linking).await?;
    }
    Ok(())
}

fn open_case(c: &case::Model) -> Result<()> {
    if c.merged_into.is_some() {
        return Err(Error::Conflict("the case was merged into another".into()));
    }
    if c.state != CaseState::Open.as_str() {
        return Err(Error::Conflict(format!("the case is {}", c.state)));
    }
    Ok(())
}

/// A person merges case `from` into case `into`: its alerts move, its
/// entities index under `into`, and `from` records where it went. Audited.
pub async fn merge(tx: &TenantTx, clock: &dyn Clock, actor: &Actor, from: Uuid, into: Uuid) -> Result<()> {
    if from == into {
        return Err(Error::Invalid("a case cannot be merged into itself".into()));
    }
    let (f, i) = (cases::model(tx, from).await?, cases::model(tx, into).await?);
    open_case(&f)?;
    open_case(&i)?;
    let now = clock.now();
    let moved = case_alert::Entity::update_many()
        .col_expr(case_alert::Column::CaseId, Expr::value(into))
        .filter(case_alert::Column::TenantId.eq(tx.tenant().0))
        .filter(case_alert::Column::CaseId.eq(from))
        .exec(&**tx)
        .await?
        .rows_affected;
    merge_index(tx, from, into).await?;
    case::Entity::update_many()
        .col_expr(case::Column::MergedInto, Expr::value(into))
        .col_expr(case::Column::UpdatedAt, Expr::value(now))
        .filter(case::Column::Id.eq(from))
        .filter(case::Column::TenantId.eq(tx.tenant().0))
        .exec(&**tx)
        .await?;
    touch(tx, &[into], now).await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "case.merge",
            target: format!("case:{from}"),
            summary: json!({"into": into, "alerts_moved": moved, "by": "person"}),
        },
    )
    .await
}

/// A person splits `alert_ids` out of a case into a new case (at least one
/// alert stays). Both cases' entity indexes are rebuilt; the moved alerts
/// record that they were split out and by whom. Audited. Returns the new case.
pub async fn split(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    case_id: Uuid,
    alert_ids: &[Uuid],
    title: Option<&str>,
) -> Result<Uuid> {
    let c = cases::model(tx, case_id).await?;
    open_case(&c)?;
    let links = case_alert::Entity::find()
        .filter(case_alert::Column::TenantId.eq(tx.tenant().0))
        .filter(case_alert::Column::CaseId.eq(case_id))
        .all(&**tx)
        .await?;
    if alert_ids.is_empty() {
        return Err(Error::Invalid("name the alerts to split out".into()));
    }
    for a in alert_ids {
        if !links.iter().any(|l| l.alert_id == *a) {
            return Err(Error::Invalid(format!("alert {a} is not in this case")));
        }
    }
    if links.iter().all(|l| alert_ids.contains(&l.alert_id)) {
        return Err(Error::Invalid(
            "a split leaves at least one alert in the case".into(),
        ));
    }
    let severity: Severity = c.severity.parse()?;
    let title = title
        .map(str::to_owned)
        .unwrap_or_else(|| format!("Split from: {}", c.title));
    let new = cases::open(tx, clock, actor, &title, severity).await?;
    let now = clock.now();
    case_alert::Entity::update_many()
        .col_expr(case_alert::Column::CaseId, Expr::value(new.id))
        .col_expr(
            case_alert::Column::JoinedBy,
            Expr::value(json!({"split_from": case_id, "by": actor.label})),
        )
        .col_expr(case_alert::Column::JoinedAt, Expr::value(now))
        .filter(case_alert::Column::TenantId.eq(tx.tenant().0))
        .filter(case_alert::Column::CaseId.eq(case_id))
        .filter(case_alert::Column::AlertId.is_in(alert_ids.iter().copied()))
        .exec(&**tx)
        .await?;
    let s = settings(tx).await?;
    reindex(tx, case_id, &s).await?;
    reindex(tx, new.id, &s).await?;
    touch(tx, &[case_id], now).await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "case.split",
            target: format!("case:{case_id}"),
            summary: json!({"new_case": new.id, "alerts": alert_ids}),
        },
    )
    .await?;
    Ok(new.id)
}

/// A case's alerts with why each joined (None: it opened the case).
pub async fn alerts_of(tx: &TenantTx, case_id: Uuid) -> Result<Vec<(Uuid, Option<Value>)>> {
    Ok(case_alert::Entity::find()
        .filter(case_alert::Column::TenantId.eq(tx.tenant().0))
        .filter(case_alert::Column::CaseId.eq(case_id))
        .all(&**tx)
        .await?
        .into_iter()
        .map(|r| (r.alert_id, r.joined_by))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_and_weights() {
        assert_eq!(title(&json!({"finding_info": {"title": " Malware "}})), "Malware");
        assert_eq!(
            title(&json!({"event": {"message": "ssh brute force"}})),
            "ssh brute force"
        );
        assert_eq!(title(&json!({})), "Alert");
        assert!(weight(Kind::Process) < MIN_WEIGHT && weight(Kind::Ip) >= MIN_WEIGHT);
    }

    #[test]
    fn grouping_follows_entities_within_the_window() {
        use chrono::TimeZone;
        let t0 = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
        let h = |n: i64| t0 + Duration::hours(n);
        // Given out of time order on purpose.
        let times = [h(5), h(0), h(2), h(0), h(20), h(1)];
        let ents: Vec<Vec<&str>> = vec![
            vec!["x"],      // 0: 3 h after #2's x: joins (sliding window)
            vec!["x"],      // 1
            vec!["x", "y"], // 2: bridges x and y
            vec!["y"],      // 3
            vec!["x"],      // 4: 15 h after the last x: a new group
            vec!["z"],      // 5: alone
        ];
        let g = group(&times, &ents, Duration::hours(3));
        assert_eq!(g[0], 1);
        assert_eq!(g[2], 1);
        assert_eq!(g[3], 1, "y joined x through #2");
        assert_eq!(g[4], 4);
        assert_eq!(g[5], 5);
        // A narrower window splits the chain at the 3-hour gap.
        let g = group(&times, &ents, Duration::hours(2));
        assert_eq!(g[0], 0);
        assert_eq!(g[2], 1);
    }
}
