//! Correlation: alerts that share entities within a time window join one
//! case — union-find over the entity graph, kept in the database. Time is
//! each alert's own event time ([`crate::pipeline::timeline::place`]), so a
//! backfill of days, a poller catching up and out-of-order delivery give
//! the cases live arrival gives: two alerts are linked when they share a
//! linking entity and lie within the window of each other, and cases are
//! the connected components of those links, whatever the arrival order.
//! A new alert joins every open case holding such a sighting; when that is
//! several cases, they merge into the oldest.
//!
//! An entity links by its weight: per kind and role ([`weight`]: the NAT
//! address every agent reports weighs less than a device's own address),
//! times a factor that falls as the entity's prevalence among the tenant's
//! hosts rises ([`crate::pipeline::prevalence`]), unless the tenant ignores
//! it. Provenance is kept: which entity joined each alert (and through
//! which alert), where a merged case went (`merged_into`, audited), and
//! [`explain`] says why each entity of a case did or did not link.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query, SelectStatement};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryResult,
    Statement,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

use crate::audit::{self, Actor, Event};
use crate::engine::cases;
use crate::engine::state::{CaseState, Severity};
use crate::pipeline::observables::{Kind, LOOKUP_CHUNK, Observable, Role, by_kind};
use crate::pipeline::prevalence::{self, Noise, Prevalence};
use crate::store::TenantTx;
use crate::store::entity::{alert, case, case_alert, case_entity, observable, tenant_control};
use crate::{Clock, Error, Result};

/// Alerts further apart than this do not join the same case.
pub const WINDOW: Duration = Duration::hours(24);
/// Entities weighing less do not link alerts on their own.
pub const MIN_WEIGHT: f32 = 0.5;

/// How strongly a shared entity says "same incident", by its kind and its
/// role in the alert (before prevalence). The defaults:
///
/// | kind | roles → weight |
/// |---|---|
/// | host | device, source 1.0 · destination 0.8 · infrastructure (a domain controller) 0.2 · reference 0 |
/// | file hash | 1.0 |
/// | url | 1.0 · reference (console links) 0 |
/// | domain | destination, other 1.0 · account domain 0.1 · infrastructure (an ISP) 0.1 · reference 0 |
/// | user, e-mail | person 0.8 · service account 0.2 |
/// | ip | device, source 0.6 · destination, other 0.5 · nat 0.1 |
/// | process | 0.3 (svchost.exe, bash are shared by unrelated alerts) |
pub fn weight(kind: Kind, role: Role) -> f32 {
    match (kind, role) {
        (_, Role::Reference) => 0.0,
        (Kind::Host, Role::Destination) => 0.8,
        (Kind::Host, Role::Infrastructure) => 0.2,
        (Kind::Host, _) => 1.0,
        (Kind::FileHash | Kind::Url, _) => 1.0,
        (Kind::Domain, Role::AccountDomain | Role::Infrastructure) => 0.1,
        (Kind::Domain, _) => 1.0,
        (Kind::User | Kind::Email, Role::Service) => 0.2,
        (Kind::User | Kind::Email, _) => 0.8,
        (Kind::Ip, Role::Nat) => 0.1,
        (Kind::Ip, Role::Device | Role::Source) => 0.6,
        (Kind::Ip, _) => 0.5,
        (Kind::Process, _) => 0.3,
    }
}

/// Whether an address is routable on the internet (not private, loopback,
/// link-local, shared CGNAT space or documentation-only ranges other than
/// those the corpus uses for outside attackers).
pub fn is_public(ip: &str) -> bool {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => {
            let o = a.octets();
            !(a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || (o[0] == 100 && (64..128).contains(&o[1])))
        }
        Ok(std::net::IpAddr::V6(a)) => {
            let s = a.segments();
            !(a.is_loopback() || a.is_unspecified() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80)
        }
        Err(_) => false,
    }
}

/// A tenant's correlation settings (Security Engineers tune them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
#[schema(as = CorrelationSettings)]
pub struct Settings {
    /// Alerts further apart than this do not join one case (1 to 720 h).
    pub window_hours: i64,
    /// Alerts sharing only a host join within this many hours (1 to 720;
    /// never more than `window_hours`): a busy machine carries unrelated alerts the same
    /// day; what an incident leaves on it (a hash, a domain, an account)
    /// links for the whole window.
    #[serde(default = "default_host_window")]
    pub host_window_hours: i64,
    /// Entities weighing less do not link alerts (0 to 1).
    pub min_weight: f32,
    /// Weight (0 to 1) per entity kind (`ip`: every role of it) or per kind
    /// and role (`ip/nat`); what is not listed keeps the default ([`weight`]).
    pub weights: BTreeMap<String, f32>,
    /// Entities that never link alerts (a shared proxy, a scanner).
    pub ignore: Vec<Ignored>,
    /// How prevalence lowers a weight.
    #[serde(default)]
    pub noise: Noise,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
#[schema(as = IgnoredEntity)]
pub struct Ignored {
    pub kind: String,
    pub value: String,
}

/// Hosts link alerts within this window by default.
pub const HOST_WINDOW: Duration = Duration::hours(8);

fn default_host_window() -> i64 {
    HOST_WINDOW.num_hours()
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            window_hours: WINDOW.num_hours(),
            host_window_hours: HOST_WINDOW.num_hours(),
            min_weight: MIN_WEIGHT,
            weights: BTreeMap::new(),
            ignore: Vec::new(),
            noise: Noise::default(),
        }
    }
}

impl Settings {
    pub fn window(&self) -> Duration {
        Duration::hours(self.window_hours)
    }
    /// The window within which an entity of this kind links alerts.
    pub fn window_of(&self, kind: Kind) -> Duration {
        match kind {
            Kind::Host => Duration::hours(std::cmp::min(self.host_window_hours, self.window_hours)),
            _ => self.window(),
        }
    }
    /// The weight of an entity of this kind and role before prevalence.
    pub fn weight(&self, kind: Kind, role: Role) -> f32 {
        self.weights
            .get(&format!("{}/{}", kind.as_str(), role.as_str()))
            .or_else(|| self.weights.get(kind.as_str()))
            .copied()
            .unwrap_or_else(|| weight(kind, role))
    }

    fn ignored(&self, o: &Observable) -> bool {
        self.ignore
            .iter()
            .any(|i| i.kind == o.kind.as_str() && i.value == o.value)
    }

    /// Whether the entity could link at all (its kind and role weigh
    /// enough, the tenant does not ignore it): these are the entities whose
    /// prevalence is kept.
    pub fn may_link(&self, o: &Observable) -> bool {
        self.weight(o.kind, o.role) >= self.min_weight && !self.ignored(o)
    }

    /// The entity's weight with its prevalence. A public address on the
    /// source side keeps its weight however many hosts it reached: one
    /// outside address against many of the tenant's machines is one
    /// campaign (a brute force, a spray), where an inside address touching
    /// everything is infrastructure (a scanner, a jump host).
    pub fn effective_weight(&self, o: &Observable, p: &Prevalence) -> f32 {
        if o.kind == Kind::Ip && o.role == Role::Source && is_public(&o.value) {
            return self.weight(o.kind, o.role);
        }
        self.weight(o.kind, o.role)
            * self.noise.multiplier(
                o.kind,
                o.role,
                p.hosts(o.kind, &o.value),
                p.tenant_hosts,
                self.burst(o, p),
            )
    }

    /// Whether every sighting of the entity falls within one linking
    /// window of its kind: a campaign's burst, not background.
    pub fn burst(&self, o: &Observable, p: &Prevalence) -> bool {
        p.span(o.kind, &o.value) <= self.window_of(o.kind)
    }

    /// The entities of one alert that link it (each once). A device's own
    /// address stands for the device: when the alert names the device, the
    /// host links (within the host window) and the address adds nothing —
    /// it would otherwise carry the host's link across a whole day's
    /// lease. It links for alerts that name no device.
    pub fn linking<'a>(&self, obs: &'a [Observable], p: &Prevalence) -> Vec<&'a Observable> {
        let names_device = obs.iter().any(|o| o.kind == Kind::Host && o.role == Role::Device);
        let mut l: Vec<&'a Observable> = Vec::new();
        for o in obs {
            if names_device && o.kind == Kind::Ip && o.role == Role::Device {
                continue;
            }
            if self.links(o, p) && !l.iter().any(|x| x.kind == o.kind && x.value == o.value) {
                l.push(o);
            }
        }
        l
    }

    /// Whether this entity links alerts under these settings and prevalence.
    pub fn links(&self, o: &Observable, p: &Prevalence) -> bool {
        self.may_link(o) && self.effective_weight(o, p) >= self.min_weight
    }

    /// Checks ranges and normalizes the ignore list as extraction would.
    pub fn validated(mut self) -> Result<Self> {
        if !(1..=720).contains(&self.window_hours) {
            return Err(Error::Invalid("window_hours must be 1 to 720".into()));
        }
        if !(1..=720).contains(&self.host_window_hours) {
            return Err(Error::Invalid("host_window_hours must be 1 to 720".into()));
        }
        if !(0.0..=1.0).contains(&self.min_weight) {
            return Err(Error::Invalid("min_weight must be 0 to 1".into()));
        }
        for (k, w) in &self.weights {
            match k.split_once('/') {
                Some((kind, role)) => {
                    kind.parse::<Kind>()?;
                    role.parse::<Role>()?;
                }
                None => {
                    k.parse::<Kind>()?;
                }
            }
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
        self.noise = self.noise.validated()?;
        Ok(self)
    }
}

/// The tenant's settings (defaults until set).
pub async fn settings(tx: &TenantTx) -> Result<Settings> {
    crate::store::controls::read(tx, tenant_control::Column::Correlation, "correlation settings").await
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
    crate::store::controls::write(
        tx,
        clock,
        actor,
        tenant_control::Column::Correlation,
        "correlation.configure",
        &before,
        &new,
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

/// The hour of event time an index row belongs to.
pub fn hour(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(3600)
}

/// Index rows of open cases holding a sighting of one of `linking` in the
/// hours `lo..=hi`: one statement per kind, each an indexed lookup of its
/// values (`tenant_id = ? AND kind = ? AND value IN (...)`). An OR-list of
/// (kind, value) pairs would read the same rows, but SQLite's planner, with
/// no statistics, turns a long one into a scan of the tenant's index rows,
/// a cost that grows with the estate (see BENCHMARKS "Ingest").
async fn reachable(tx: &TenantTx, lo: i64, hi: i64, linking: &[&Observable]) -> Result<Vec<QueryResult>> {
    let backend = tx.get_database_backend();
    let mut out = Vec::new();
    for (kind, values) in by_kind(linking.iter().map(|o| (o.kind, o.value.as_str()))) {
        for chunk in values.chunks(LOOKUP_CHUNK) {
            let q = reachable_statement(backend, tx.tenant().0, kind, chunk, lo, hi);
            out.extend(tx.query_all_raw(q).await?);
        }
    }
    Ok(out)
}

/// One statement of [`reachable`]: index rows of open cases for `values`
/// of one kind in the hours `lo..=hi`. On PostgreSQL each value is its own
/// lookup by the index's key (see `prevalence::hosts_statement`); `OFFSET
/// 0` keeps the planner from flattening the subquery into a hash join.
pub fn reachable_statement(
    backend: DbBackend,
    tenant: Uuid,
    kind: Kind,
    values: &[&str],
    lo: i64,
    hi: i64,
) -> Statement {
    if backend == DbBackend::Postgres {
        let sql = format!(
            "SELECT x.* FROM (VALUES {}) AS w(v) CROSS JOIN LATERAL \
             (SELECT ce.case_id, ce.kind, ce.value, ce.first_seen, ce.last_seen, ce.pointer, ce.via_alert \
             FROM case_entities ce JOIN cases c ON c.id = ce.case_id \
             WHERE ce.tenant_id = $1 AND ce.kind = $2 AND ce.value = w.v AND ce.hour >= $3 AND ce.hour <= $4 \
             AND c.tenant_id = $1 AND c.state = $5 AND c.merged_into IS NULL OFFSET 0) AS x",
            prevalence::pg_values(6, values.len())
        );
        let mut args: Vec<sea_orm::Value> = vec![
            tenant.into(),
            kind.as_str().into(),
            lo.into(),
            hi.into(),
            CaseState::Open.as_str().into(),
        ];
        args.extend(values.iter().map(|v| sea_orm::Value::from(*v)));
        return Statement::from_sql_and_values(backend, sql, args);
    }
    backend.build(&reachable_query(tenant, kind, values, lo, hi))
}

fn reachable_query(tenant: Uuid, kind: Kind, values: &[&str], lo: i64, hi: i64) -> SelectStatement {
    Query::select()
        .columns([
            (case_entity::Entity, case_entity::Column::CaseId),
            (case_entity::Entity, case_entity::Column::Kind),
            (case_entity::Entity, case_entity::Column::Value),
            (case_entity::Entity, case_entity::Column::FirstSeen),
            (case_entity::Entity, case_entity::Column::LastSeen),
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
        .and_where(Expr::col((case_entity::Entity, case_entity::Column::Kind)).eq(kind.as_str()))
        .and_where(Expr::col((case_entity::Entity, case_entity::Column::Value)).is_in(values.iter().copied()))
        .and_where(Expr::col((case_entity::Entity, case_entity::Column::Hour)).gte(lo))
        .and_where(Expr::col((case_entity::Entity, case_entity::Column::Hour)).lte(hi))
        .and_where(Expr::col((case::Entity, case::Column::TenantId)).eq(tenant))
        .and_where(Expr::col((case::Entity, case::Column::State)).eq(CaseState::Open.as_str()))
        .and_where(Expr::col((case::Entity, case::Column::MergedInto)).is_null())
        .to_owned()
}

/// Index rows for sightings: one per (entity, case, hour), spanning the
/// first and last sighting, naming the alert of the last.
#[derive(Debug, Default)]
struct IndexRows<'a> {
    rows: HashMap<IndexKey<'a>, Span<'a>>,
}

/// (kind, value, hour, case).
type IndexKey<'a> = (Kind, &'a str, i64, Uuid);
/// (first, last, alert of the last, its pointer).
type Span<'a> = (DateTime<Utc>, DateTime<Utc>, Uuid, &'a str);

impl<'a> IndexRows<'a> {
    fn add(&mut self, o: &'a Observable, case_id: Uuid, at: DateTime<Utc>, alert: Uuid) {
        let e = self
            .rows
            .entry((o.kind, o.value.as_str(), hour(at), case_id))
            .or_insert((at, at, alert, o.pointer.as_str()));
        if at < e.0 {
            e.0 = at;
        }
        if at > e.1 {
            e.1 = at;
            e.2 = alert;
            e.3 = o.pointer.as_str();
        }
    }

    async fn write(self, tx: &TenantTx) -> Result<()> {
        // In key order: concurrent writers of the same rows lock them in one order.
        let mut rows: Vec<_> = self.rows.into_iter().collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let models: Vec<case_entity::ActiveModel> = rows
            .into_iter()
            .map(
                |((kind, value, hour, case_id), (first, last, via, pointer))| case_entity::ActiveModel {
                    tenant_id: Set(tx.tenant().0),
                    kind: Set(kind.as_str().to_owned()),
                    value: Set(value.to_owned()),
                    hour: Set(hour),
                    case_id: Set(case_id),
                    first_seen: Set(first),
                    last_seen: Set(last),
                    via_alert: Set(via),
                    pointer: Set(pointer.to_owned()),
                },
            )
            .collect();
        for chunk in models.chunks(CHUNK) {
            upsert_index(tx, chunk.to_vec()).await?;
        }
        Ok(())
    }
}

/// On a conflict, the row spans both sightings (first = the earlier, last =
/// the later with its alert and pointer); a row already spanning the new
/// one is not rewritten.
fn merge_on_conflict() -> OnConflict {
    let t = "case_entities";
    let later = format!("excluded.last_seen > {t}.last_seen");
    OnConflict::columns([
        case_entity::Column::TenantId,
        case_entity::Column::Kind,
        case_entity::Column::Value,
        case_entity::Column::Hour,
        case_entity::Column::CaseId,
    ])
    .value(
        case_entity::Column::FirstSeen,
        Expr::cust(format!(
            "CASE WHEN excluded.first_seen < {t}.first_seen THEN excluded.first_seen ELSE {t}.first_seen END"
        )),
    )
    .value(
        case_entity::Column::LastSeen,
        Expr::cust(format!(
            "CASE WHEN {later} THEN excluded.last_seen ELSE {t}.last_seen END"
        )),
    )
    .value(
        case_entity::Column::ViaAlert,
        Expr::cust(format!(
            "CASE WHEN {later} THEN excluded.via_alert ELSE {t}.via_alert END"
        )),
    )
    .value(
        case_entity::Column::Pointer,
        Expr::cust(format!(
            "CASE WHEN {later} THEN excluded.pointer ELSE {t}.pointer END"
        )),
    )
    .action_and_where(Expr::cust(format!(
        "excluded.first_seen < {t}.first_seen OR {later}"
    )))
    .to_owned()
}

/// Upserts entity index rows (spans merge).
async fn upsert_index(tx: &TenantTx, rows: Vec<case_entity::ActiveModel>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    case_entity::Entity::insert_many(rows)
        .on_conflict(merge_on_conflict())
        .exec_without_returning(&**tx)
        .await?;
    Ok(())
}

/// Moves a merged-away case's index rows to the survivor (spans merge).
async fn merge_index(tx: &TenantTx, from: Uuid, into: Uuid) -> Result<()> {
    let tenant = tx.tenant().0;
    let select = Query::select()
        .columns([
            case_entity::Column::TenantId,
            case_entity::Column::Kind,
            case_entity::Column::Value,
            case_entity::Column::Hour,
        ])
        .expr(Expr::val(into))
        .columns([
            case_entity::Column::FirstSeen,
            case_entity::Column::LastSeen,
            case_entity::Column::ViaAlert,
            case_entity::Column::Pointer,
        ])
        .from(case_entity::Entity)
        .and_where(Expr::col(case_entity::Column::TenantId).eq(tenant))
        .and_where(Expr::col(case_entity::Column::CaseId).eq(from))
        .to_owned();
    let insert = Query::insert()
        .into_table(case_entity::Entity)
        .columns([
            case_entity::Column::TenantId,
            case_entity::Column::Kind,
            case_entity::Column::Value,
            case_entity::Column::Hour,
            case_entity::Column::CaseId,
            case_entity::Column::FirstSeen,
            case_entity::Column::LastSeen,
            case_entity::Column::ViaAlert,
            case_entity::Column::Pointer,
        ])
        .select_from(select)
        .map_err(|e| Error::Invalid(format!("merge index: {e}")))?
        .on_conflict(merge_on_conflict())
        .to_owned();
    let backend = tx.get_database_backend();
    tx.execute_raw(backend.build(&insert)).await?;
    case_entity::Entity::delete_many()
        .filter(case_entity::Column::TenantId.eq(tenant))
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
    group_by(times, entities, |_| window)
}

/// [`group`] with a window per entity (a host links for less time than a
/// file hash: a busy machine carries unrelated alerts the same day).
pub fn group_by<K: std::hash::Hash + Eq + Clone>(
    times: &[DateTime<Utc>],
    entities: &[Vec<K>],
    window: impl Fn(&K) -> Duration,
) -> Vec<usize> {
    let n = times.len().min(entities.len());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (times[i], i));
    let mut uf = UnionFind::new(n);
    let mut last: HashMap<K, usize> = HashMap::new();
    for &i in &order {
        for e in &entities[i] {
            match last.get_mut(e) {
                Some(prev) => {
                    if times[i] - times[*prev] <= window(e) {
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
    let mut first: HashMap<usize, usize> = HashMap::new();
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
    /// Where it sits in time ([`crate::pipeline::timeline::place`]).
    pub at: DateTime<Utc>,
}

/// Rows per multi-row INSERT (stays under SQLite's and PostgreSQL's bind
/// parameter limits for the widest table written here).
const CHUNK: usize = 1_000;

/// A sighting of an entity in an open case, from the index.
#[derive(Debug, Clone)]
struct Sighting {
    case_id: Uuid,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    why: Value,
}

/// Places the newly stored alerts of one delivery in cases; returns each
/// alert's case. The same rule as one alert at a time, in a fixed number of
/// statements per delivery: the delivery's (entity, host) pairs are
/// recorded and the prevalence of its entities read ([`prevalence`]); the
/// alerts are grouped in memory on their event times ([`group`]); ONE
/// indexed lookup per 200 distinct entities finds the open cases holding a
/// sighting within the window of the delivery's times, and each alert is
/// checked against each sighting exactly; each group joins the oldest case
/// it reaches (the others merge into it, audited) or opens one; then the
/// case links and the entity index are written with multi-row INSERTs.
/// Each alert's provenance names the entity (and alert) it joined by. The
/// caller marks the touched cases updated ([`touch`]).
pub async fn correlate_batch(
    tx: &TenantTx,
    clock: &dyn Clock,
    settings: &Settings,
    alerts: &[NewAlert<'_>],
) -> Result<Vec<Uuid>> {
    let n = alerts.len();
    let now = clock.now();
    let window = settings.window();
    serialize_tenant(tx).await?;
    let placed: Vec<(DateTime<Utc>, &[Observable])> = alerts.iter().map(|a| (a.at, a.observables)).collect();
    let prevalence = prevalence::observe(tx, &settings.noise, &placed, |o| settings.may_link(o)).await?;
    unlink_noise(tx, clock, settings, alerts, &prevalence).await?;
    let linking: Vec<Vec<&Observable>> = alerts
        .iter()
        .map(|a| settings.linking(a.observables, &prevalence))
        .collect();
    let keys: Vec<Vec<(Kind, &str)>> = linking
        .iter()
        .map(|l| l.iter().map(|o| (o.kind, o.value.as_str())).collect())
        .collect();
    let times: Vec<DateTime<Utc>> = alerts.iter().map(|a| a.at).collect();
    let roots = group_by(&times, &keys, |(k, _)| settings.window_of(*k));

    // For provenance inside the delivery: per entity, its carriers in time
    // order (alert index, pointer).
    let mut carriers: HashMap<(Kind, &str), Vec<(usize, &str)>> = HashMap::new();
    let mut distinct: Vec<&Observable> = Vec::new();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (times[i], i));
    for &i in &order {
        for o in &linking[i] {
            let c = carriers.entry((o.kind, o.value.as_str())).or_default();
            if c.is_empty() {
                distinct.push(o);
            }
            c.push((i, o.pointer.as_str()));
        }
    }

    // Sightings in open cases within the window of the delivery's times.
    let mut hits: HashMap<(Kind, String), Vec<Sighting>> = HashMap::new();
    if let (Some(lo), Some(hi)) = (times.iter().min(), times.iter().max()) {
        let (lo, hi) = (hour(*lo - window), hour(*hi + window));
        for r in reachable(tx, lo, hi, &distinct).await? {
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
            hits.entry((kind, value)).or_default().push(Sighting {
                case_id: r.try_get("", "case_id")?,
                first: r.try_get("", "first_seen")?,
                last: r.try_get("", "last_seen")?,
                why,
            });
        }
    }

    let mut members: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut group_order: Vec<usize> = Vec::new();
    for &i in &order {
        members
            .entry(roots[i])
            .or_insert_with(|| {
                group_order.push(roots[i]);
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
    for root in group_order {
        let group = &members[&root];
        let mut found: Vec<(case::Model, Value)> = Vec::new();
        let mut own: HashMap<usize, Value> = HashMap::new();
        for &i in group {
            for o in &linking[i] {
                let Some(hs) = hits.get(&(o.kind, o.value.clone())) else {
                    continue;
                };
                for h in hs {
                    // Exact: some sighting of this hour row lies within the
                    // window of the alert's time (rows span < 1 h <= window).
                    let w = settings.window_of(o.kind);
                    if h.first > times[i] + w || h.last < times[i] - w {
                        continue;
                    }
                    own.entry(i).or_insert_with(|| h.why.clone());
                    let cid = follow(&redirected, h.case_id);
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
                    found.push((c, h.why.clone()));
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
                // Joined through another alert of this delivery sharing an
                // entity within the window (the nearest such carrier).
                linking[i].iter().find_map(|o| {
                    let c = carriers.get(&(o.kind, o.value.as_str()))?;
                    let (j, pointer) = c
                        .iter()
                        .filter(|(j, _)| {
                            *j != i && (times[*j] - times[i]).abs() <= settings.window_of(o.kind)
                        })
                        .min_by_key(|(j, _)| (times[*j] - times[i]).abs())?;
                    Some(json!({
                        "kind": o.kind.as_str(),
                        "value": o.value,
                        "pointer": pointer,
                        "via_alert": alerts[*j].id,
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
    let mut index = IndexRows::default();
    for (i, l) in linking.iter().enumerate() {
        for o in l {
            index.add(o, case_of[i], times[i], alerts[i].id);
        }
    }
    index.write(tx).await?;
    Ok(case_of)
}

/// Entities of this delivery that could link but, by their prevalence, no
/// longer do: where they still hold open cases together (they linked
/// while they were rare — the first days of a tenant, the start of a
/// backfill), their index rows go and each such case is correlated again
/// without them; alerts that no longer belong together split into cases of
/// their own (audited, provenance kept). Cases a person merged or split
/// are left as the person left them.
async fn unlink_noise(
    tx: &TenantTx,
    clock: &dyn Clock,
    settings: &Settings,
    alerts: &[NewAlert<'_>],
    p: &Prevalence,
) -> Result<()> {
    let mut noisy: Vec<&Observable> = Vec::new();
    for a in alerts {
        for o in a.observables {
            if settings.may_link(o)
                && !settings.links(o, p)
                && !noisy.iter().any(|x| x.kind == o.kind && x.value == o.value)
            {
                noisy.push(o);
            }
        }
    }
    if noisy.is_empty() {
        return Ok(());
    }
    let mut held: Vec<Uuid> = Vec::new();
    let mut reasons: HashMap<Uuid, Vec<Value>> = HashMap::new();
    let rows = reachable(tx, i64::MIN, i64::MAX, &noisy).await?;
    if rows.is_empty() {
        return Ok(());
    }
    for r in rows {
        let case_id: Uuid = r.try_get("", "case_id")?;
        let kind: String = r.try_get("", "kind")?;
        let value: String = r.try_get("", "value")?;
        if !held.contains(&case_id) {
            held.push(case_id);
        }
        let Ok(k) = kind.parse::<Kind>() else { continue };
        let why = json!({"kind": kind, "value": value, "hosts": p.hosts(k, &value), "tenant_hosts": p.tenant_hosts});
        let list = reasons.entry(case_id).or_default();
        if !list.contains(&why) {
            list.push(why);
        }
    }
    for (kind, values) in by_kind(noisy.iter().map(|o| (o.kind, o.value.as_str()))) {
        for chunk in values.chunks(LOOKUP_CHUNK) {
            case_entity::Entity::delete_many()
                .filter(case_entity::Column::TenantId.eq(tx.tenant().0))
                .filter(case_entity::Column::Kind.eq(kind.as_str()))
                .filter(case_entity::Column::Value.is_in(chunk.iter().copied()))
                .exec(&**tx)
                .await?;
        }
    }
    held.sort();
    for case_id in held {
        resplit(
            tx,
            clock,
            settings,
            case_id,
            reasons.remove(&case_id).unwrap_or_default(),
        )
        .await?;
    }
    Ok(())
}

/// Correlates one case's alerts again under the current rules; splits off
/// every group that no longer links to the group of its first alert.
async fn resplit(
    tx: &TenantTx,
    clock: &dyn Clock,
    settings: &Settings,
    case_id: Uuid,
    because: Vec<Value>,
) -> Result<()> {
    let contents = case_contents(tx, case_id).await?;
    let person = alerts_of(tx, case_id)
        .await?
        .iter()
        .any(|(_, j)| j.as_ref().is_some_and(|j| j.get("by").is_some()));
    if person || contents.len() < 2 {
        return Ok(());
    }
    let p = case_prevalence(tx, settings, &contents).await?;
    let keys: Vec<Vec<(Kind, &str)>> = contents
        .iter()
        .map(|(_, obs)| {
            settings
                .linking(obs, &p)
                .into_iter()
                .map(|o| (o.kind, o.value.as_str()))
                .collect()
        })
        .collect();
    let times: Vec<DateTime<Utc>> = contents.iter().map(|(a, _)| placed_at(a)).collect();
    let roots = group_by(&times, &keys, |(k, _)| settings.window_of(*k));
    let keep = roots[0];
    let mut parts: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, r) in roots.iter().enumerate() {
        if *r != keep {
            parts.entry(*r).or_default().push(i);
        }
    }
    if parts.is_empty() {
        return reindex(tx, case_id, settings).await;
    }
    let c = cases::model(tx, case_id).await?;
    let severity: Severity = c.severity.parse()?;
    let system = Actor {
        label: "system:correlation".into(),
        role: None,
        source_ip: None,
    };
    let now = clock.now();
    let mut new_cases = Vec::new();
    for (_, members) in parts {
        let raw: Value = serde_json::from_str(&contents[members[0]].0.raw).unwrap_or(Value::Null);
        let new = cases::open(tx, clock, &system, &title(&raw), severity).await?;
        let ids: Vec<Uuid> = members.iter().map(|&i| contents[i].0.id).collect();
        case_alert::Entity::update_many()
            .col_expr(case_alert::Column::CaseId, Expr::value(new.id))
            .col_expr(
                case_alert::Column::JoinedBy,
                Expr::value(json!({"split_from": case_id, "unlinked": because})),
            )
            .col_expr(case_alert::Column::JoinedAt, Expr::value(now))
            .filter(case_alert::Column::TenantId.eq(tx.tenant().0))
            .filter(case_alert::Column::AlertId.is_in(ids.clone()))
            .exec(&**tx)
            .await?;
        reindex(tx, new.id, settings).await?;
        // The part may belong with another open case now (it would have
        // joined it, had the entity that glued it been known as noise).
        let into = rejoin(tx, clock, settings, new.id, case_id, &contents, &members, &p).await?;
        new_cases.push(json!({"case": into, "alerts": ids}));
    }
    reindex(tx, case_id, settings).await?;
    touch(tx, &[case_id], now).await?;
    audit::record(
        tx,
        clock,
        &system,
        Event {
            action: "case.split",
            target: format!("case:{case_id}"),
            summary: json!({"by": "correlation", "because": {"no_longer_linking": because}, "new_cases": new_cases}),
        },
    )
    .await
}

/// Joins a split-off part (`members` of `contents`, now case `part`) to the
/// open cases its linking entities reach (other than the case it left);
/// the oldest survives. Returns where the part's alerts are.
#[allow(clippy::too_many_arguments)]
async fn rejoin(
    tx: &TenantTx,
    clock: &dyn Clock,
    settings: &Settings,
    part: Uuid,
    left: Uuid,
    contents: &[(alert::Model, Vec<Observable>)],
    members: &[usize],
    p: &Prevalence,
) -> Result<Uuid> {
    let mut linking: Vec<&Observable> = Vec::new();
    let mut lo: Option<DateTime<Utc>> = None;
    let mut hi: Option<DateTime<Utc>> = None;
    for &i in members {
        let at = placed_at(&contents[i].0);
        lo = Some(lo.map_or(at, |x| std::cmp::min(x, at)));
        hi = Some(hi.map_or(at, |x| std::cmp::max(x, at)));
        for o in settings.linking(&contents[i].1, p) {
            if !linking.iter().any(|x| x.kind == o.kind && x.value == o.value) {
                linking.push(o);
            }
        }
    }
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Ok(part);
    };
    let window = settings.window();
    let mut found: Vec<(case::Model, Value)> = Vec::new();
    for r in reachable(tx, hour(lo - window), hour(hi + window), &linking).await? {
        let cid: Uuid = r.try_get("", "case_id")?;
        if cid == part || cid == left || found.iter().any(|(c, _)| c.id == cid) {
            continue;
        }
        let kind: String = r.try_get("", "kind")?;
        let Ok(kind) = kind.parse::<Kind>() else { continue };
        let (first, last): (DateTime<Utc>, DateTime<Utc>) =
            (r.try_get("", "first_seen")?, r.try_get("", "last_seen")?);
        let w = settings.window_of(kind);
        let value: String = r.try_get("", "value")?;
        let near = members.iter().any(|&i| {
            let at = placed_at(&contents[i].0);
            first <= at + w
                && last >= at - w
                && contents[i].1.iter().any(|o| o.kind == kind && o.value == value)
        });
        if !near {
            continue;
        }
        let c = survivor(tx, cid).await?;
        if c.state != CaseState::Open.as_str()
            || c.id == part
            || c.id == left
            || found.iter().any(|(f, _)| f.id == c.id)
        {
            continue;
        }
        let why = json!({"kind": kind.as_str(), "value": value, "pointer": r.try_get::<String>("", "pointer")?, "via_alert": r.try_get::<Uuid>("", "via_alert")?});
        found.push((c, why));
    }
    if found.is_empty() {
        return Ok(part);
    }
    let me = cases::model(tx, part).await?;
    found.push((me, Value::Null));
    found.sort_by_key(|(c, _)| (c.created_at, c.id));
    let keep = found[0].0.id;
    let system = Actor {
        label: "system:correlation".into(),
        role: None,
        source_ip: None,
    };
    let now = clock.now();
    let via = found
        .iter()
        .find(|(_, w)| !w.is_null())
        .map(|(_, w)| w.clone())
        .unwrap_or(Value::Null);
    for (other, _) in found.iter().skip(1) {
        absorb(
            tx,
            clock,
            &system,
            contents[members[0]].0.id,
            other.id,
            keep,
            &via,
            now,
        )
        .await?;
    }
    Ok(keep)
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

/// A case's alerts (by event time) with their observables.
async fn case_contents(tx: &TenantTx, case_id: Uuid) -> Result<Vec<(alert::Model, Vec<Observable>)>> {
    // The case's alerts and their observables by a subquery on the case's
    // links, not by a list of ids sent back: one round trip each, planned
    // as a join.
    let mut alerts = alert::Entity::find()
        .filter(alert::Column::TenantId.eq(tx.tenant().0))
        .filter(alert::Column::Id.in_subquery(alerts_of_case(tx, case_id)))
        .all(&**tx)
        .await?;
    alerts.sort_by_key(|a| (placed_at(a), a.id));
    let mut obs: HashMap<Uuid, Vec<Observable>> = HashMap::with_capacity(alerts.len());
    for o in observable::Entity::find()
        .filter(observable::Column::TenantId.eq(tx.tenant().0))
        .filter(observable::Column::AlertId.in_subquery(alerts_of_case(tx, case_id)))
        .all(&**tx)
        .await?
    {
        if let Ok(kind) = o.kind.parse() {
            obs.entry(o.alert_id)
                .or_default()
                .push(Observable::stored(kind, o.value, o.pointer));
        }
    }
    Ok(alerts
        .into_iter()
        .map(|a| {
            let o = obs.remove(&a.id).unwrap_or_default();
            (a, o)
        })
        .collect())
}

/// `SELECT alert_id FROM case_alerts WHERE tenant_id = ? AND case_id = ?`.
pub(crate) fn alerts_of_case(tx: &TenantTx, case_id: Uuid) -> SelectStatement {
    Query::select()
        .column(case_alert::Column::AlertId)
        .from(case_alert::Entity)
        .and_where(case_alert::Column::TenantId.eq(tx.tenant().0))
        .and_where(case_alert::Column::CaseId.eq(case_id))
        .to_owned()
}

/// Where a stored alert sits in time.
pub fn placed_at(a: &alert::Model) -> DateTime<Utc> {
    a.event_at.unwrap_or(a.received_at)
}

/// The prevalence of a case's entities as of its latest alert.
async fn case_prevalence(
    tx: &TenantTx,
    settings: &Settings,
    contents: &[(alert::Model, Vec<Observable>)],
) -> Result<Prevalence> {
    let Some(latest) = contents.iter().map(|(a, _)| placed_at(a)).max() else {
        return Ok(Prevalence::default());
    };
    let mut entities: Vec<(Kind, &str)> = Vec::new();
    for (_, obs) in contents {
        for o in obs {
            if settings.may_link(o) && !entities.contains(&(o.kind, o.value.as_str())) {
                entities.push((o.kind, o.value.as_str()));
            }
        }
    }
    prevalence::read(tx, &settings.noise, &entities, latest).await
}

/// Rebuilds a case's entity index from its alerts (after a split).
async fn reindex(tx: &TenantTx, case_id: Uuid, settings: &Settings) -> Result<()> {
    case_entity::Entity::delete_many()
        .filter(case_entity::Column::TenantId.eq(tx.tenant().0))
        .filter(case_entity::Column::CaseId.eq(case_id))
        .exec(&**tx)
        .await?;
    let contents = case_contents(tx, case_id).await?;
    let p = case_prevalence(tx, settings, &contents).await?;
    let mut index = IndexRows::default();
    for (a, obs) in &contents {
        for o in settings.linking(obs, &p) {
            index.add(o, case_id, placed_at(a), a.id);
        }
    }
    index.write(tx).await
}

/// Why an entity of a case did or did not link alerts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EntityVerdict {
    pub kind: Kind,
    pub value: String,
    pub role: Role,
    /// Alerts of the case that carry it.
    pub alerts: usize,
    /// Its weight by kind and role (the tenant's or the default).
    pub base_weight: f32,
    /// With how many of the tenant's hosts it was seen in the period.
    pub hosts: u64,
    pub tenant_hosts: u64,
    /// Its weight after prevalence.
    pub weight: f32,
    pub links: bool,
    /// In words, for the analyst.
    pub why: String,
}

/// Why the alerts of a case are together: each alert's provenance, and a
/// verdict per entity.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Explanation {
    pub case_id: Uuid,
    pub window_hours: i64,
    pub min_weight: f32,
    pub alerts: Vec<AlertLink>,
    pub entities: Vec<EntityVerdict>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AlertLink {
    pub alert_id: Uuid,
    pub at: DateTime<Utc>,
    pub placed_by: String,
    /// The entity (and alert) it joined by; `None`: it opened the case.
    pub joined_by: Option<Value>,
}

/// Explains a case's grouping under the tenant's current settings.
pub async fn explain(tx: &TenantTx, case_id: Uuid) -> Result<Explanation> {
    cases::get(tx, case_id).await?;
    let settings = settings(tx).await?;
    let contents = case_contents(tx, case_id).await?;
    let p = case_prevalence(tx, &settings, &contents).await?;
    let joined: HashMap<Uuid, Option<Value>> = alerts_of(tx, case_id).await?.into_iter().collect();
    let mut seen: BTreeMap<(Kind, String, Role), usize> = BTreeMap::new();
    // Entities that some alert carrying them links by (a device's own
    // address in an alert that names the device does not).
    let mut linked_somewhere: std::collections::BTreeSet<(Kind, String, Role)> = Default::default();
    for (_, obs) in &contents {
        for o in settings.linking(obs, &p) {
            linked_somewhere.insert((o.kind, o.value.clone(), o.role));
        }
    }
    for (_, obs) in &contents {
        let mut once: Vec<(Kind, &str, Role)> = Vec::new();
        for o in obs {
            if !once.contains(&(o.kind, o.value.as_str(), o.role)) {
                once.push((o.kind, o.value.as_str(), o.role));
                *seen.entry((o.kind, o.value.clone(), o.role)).or_default() += 1;
            }
        }
    }
    let mut entities = Vec::with_capacity(seen.len());
    for ((kind, value, role), n) in seen {
        let o = Observable {
            kind,
            value,
            pointer: String::new(),
            role,
        };
        let base = settings.weight(kind, role);
        let hosts = p.hosts(kind, &o.value);
        let w = settings.effective_weight(&o, &p);
        let links = linked_somewhere.contains(&(kind, o.value.clone(), role));
        let shadowed = !links && settings.links(&o, &p);
        let share = if p.tenant_hosts > 0 {
            format!(
                "{:.0}%",
                100.0 * hosts as f64 / std::cmp::max(p.tenant_hosts, hosts) as f64
            )
        } else {
            "—".into()
        };
        let why = if settings.ignored(&o) {
            "does not link: on the tenant's ignore list".to_owned()
        } else if base < settings.min_weight {
            format!(
                "does not link: a {} as {} weighs {base:.2} (links from {:.2})",
                kind.as_str(),
                role.as_str().replace('_', " "),
                settings.min_weight
            )
        } else if shadowed {
            "does not link: the device's own address, and its alerts name the device (the host links)"
                .to_owned()
        } else if !links {
            format!(
                "does not link: seen with {hosts} of this tenant's {} hosts in the last {} days ({share}), so it weighs {w:.2}",
                p.tenant_hosts, settings.noise.period_days
            )
        } else if hosts >= u64::from(settings.noise.min_hosts)
            && settings.burst(&o, &p)
            && hosts as f32 > settings.noise.rare_share * std::cmp::max(p.tenant_hosts, hosts) as f32
        {
            format!(
                "links alerts within {} h: weighs {w:.2}; seen with {hosts} of {} hosts ({share}), all within {} h, so a burst (a campaign), not background",
                settings.window_of(kind).num_hours(),
                p.tenant_hosts,
                std::cmp::max(p.span(kind, &o.value).num_hours(), 1),
            )
        } else {
            format!(
                "links alerts within {} h: weighs {w:.2} (seen with {hosts} of {} hosts, {share})",
                settings.window_of(kind).num_hours(),
                p.tenant_hosts
            )
        };
        entities.push(EntityVerdict {
            kind,
            value: o.value,
            role,
            alerts: n,
            base_weight: base,
            hosts,
            tenant_hosts: p.tenant_hosts,
            weight: w,
            links,
            why,
        });
    }
    Ok(Explanation {
        case_id,
        window_hours: settings.window_hours,
        min_weight: settings.min_weight,
        alerts: contents
            .iter()
            .map(|(a, _)| AlertLink {
                alert_id: a.id,
                at: placed_at(a),
                placed_by: a.placed_by.clone(),
                joined_by: joined.get(&a.id).cloned().flatten(),
            })
            .collect(),
        entities,
    })
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
        // A person decided: correlation never splits these alerts apart again.
        .col_expr(
            case_alert::Column::JoinedBy,
            Expr::value(json!({"merged_from": from, "by": actor.label})),
        )
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
    // The survivor is investigated again with what it now holds.
    crate::pipeline::investigation::schedule(tx, clock, &[into]).await?;
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
    // Both halves are investigated again, each with its own alerts.
    crate::pipeline::investigation::schedule(tx, clock, &[case_id, new.id]).await?;
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

/// For each of `entities`, the other live cases of the tenant whose alerts
/// carry it (at most `per` each, most recently changed first): the
/// analyst's pivot. One query per 100 entities; the database joins and
/// ranks, so an entity on thousands of alerts costs rows it reads, not rows
/// sent here.
pub async fn elsewhere(
    tx: &TenantTx,
    case_id: Uuid,
    entities: &[(Kind, String)],
    per: usize,
) -> Result<BTreeMap<(Kind, String), Vec<(Uuid, String)>>> {
    let backend = tx.get_database_backend();
    let mut out: BTreeMap<(Kind, String), Vec<(Uuid, String)>> = BTreeMap::new();
    // One indexed lookup per kind (see `reachable`).
    for (kind, values) in by_kind(entities.iter().map(|(k, v)| (*k, v.as_str()))) {
        for chunk in values.chunks(100) {
            let q = elsewhere_query(tx.tenant().0, case_id, kind, chunk, per);
            for r in tx.query_all_raw(backend.build(&q)).await? {
                out.entry((kind, r.try_get("", "value")?))
                    .or_default()
                    .push((r.try_get("", "case_id")?, r.try_get("", "title")?));
            }
        }
    }
    Ok(out)
}

/// One statement of [`elsewhere`], for `values` of one kind.
pub fn elsewhere_query(t: Uuid, case_id: Uuid, kind: Kind, values: &[&str], per: usize) -> SelectStatement {
    use sea_orm::EntityName;
    use sea_orm::sea_query::{Alias, Asterisk};
    let (o, ca, c) = (
        observable::Entity.table_name(),
        case_alert::Entity.table_name(),
        case::Entity.table_name(),
    );
    let col = |table: &str, column: &str| Expr::col((Alias::new(table), Alias::new(column)));
    let pairs = Query::select()
        .distinct()
        .expr_as(col(o, "kind"), Alias::new("kind"))
        .expr_as(col(o, "value"), Alias::new("value"))
        .expr_as(col(c, "id"), Alias::new("case_id"))
        .expr_as(col(c, "title"), Alias::new("title"))
        .expr_as(col(c, "updated_at"), Alias::new("updated_at"))
        .from(Alias::new(o))
        .inner_join(
            Alias::new(ca),
            col(ca, "alert_id").equals((Alias::new(o), Alias::new("alert_id"))),
        )
        .inner_join(
            Alias::new(c),
            col(c, "id").equals((Alias::new(ca), Alias::new("case_id"))),
        )
        .and_where(col(o, "tenant_id").eq(t))
        .and_where(col(o, "kind").eq(kind.as_str()))
        .and_where(col(o, "value").is_in(values.iter().copied()))
        .and_where(col(ca, "tenant_id").eq(t))
        .and_where(col(c, "tenant_id").eq(t))
        .and_where(col(ca, "case_id").ne(case_id))
        .and_where(col(c, "merged_into").is_null())
        .to_owned();
    let ranked = Query::select()
        .column(Asterisk)
        .expr_as(
            Expr::cust("ROW_NUMBER() OVER (PARTITION BY kind, value ORDER BY updated_at DESC, case_id DESC)"),
            Alias::new("rank"),
        )
        .from_subquery(pairs, Alias::new("pairs"))
        .to_owned();
    Query::select()
        .column(Asterisk)
        .from_subquery(ranked, Alias::new("ranked"))
        .and_where(Expr::col(Alias::new("rank")).lte(i64::try_from(per).unwrap_or(i64::MAX)))
        .order_by(Alias::new("rank"), sea_orm::Order::Asc)
        .to_owned()
}

/// How many alerts each of `cases` holds.
pub async fn alert_counts(tx: &TenantTx, cases: &[Uuid]) -> Result<HashMap<Uuid, u64>> {
    use sea_orm::QuerySelect;
    let mut out = HashMap::new();
    for ids in cases.chunks(500) {
        let rows: Vec<(Uuid, i64)> = case_alert::Entity::find()
            .select_only()
            .column(case_alert::Column::CaseId)
            .column_as(case_alert::Column::AlertId.count(), "n")
            .filter(case_alert::Column::TenantId.eq(tx.tenant().0))
            .filter(case_alert::Column::CaseId.is_in(ids.to_vec()))
            .group_by(case_alert::Column::CaseId)
            .into_tuple()
            .all(&**tx)
            .await?;
        out.extend(rows.into_iter().map(|(c, n)| (c, u64::try_from(n).unwrap_or(0))));
    }
    Ok(out)
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
        assert!(
            weight(Kind::Process, Role::Device) < MIN_WEIGHT && weight(Kind::Ip, Role::Device) >= MIN_WEIGHT
        );
        assert!(
            weight(Kind::Ip, Role::Nat) < MIN_WEIGHT,
            "a NAT address does not link on its own"
        );
        assert_eq!(
            weight(Kind::Url, Role::Reference),
            0.0,
            "console links never link"
        );
        let s = Settings {
            weights: [("ip".to_owned(), 0.9), ("ip/nat".to_owned(), 0.0)]
                .into_iter()
                .collect(),
            ..Settings::default()
        }
        .validated()
        .unwrap();
        assert_eq!(s.weight(Kind::Ip, Role::Source), 0.9);
        assert_eq!(s.weight(Kind::Ip, Role::Nat), 0.0);
        assert!(
            Settings {
                weights: [("ip/bogus".to_owned(), 0.5)].into_iter().collect(),
                ..Settings::default()
            }
            .validated()
            .is_err()
        );
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
