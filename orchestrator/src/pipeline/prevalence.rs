//! Entity prevalence: noise the correlator finds itself. An entity seen with
//! a large share of a tenant's hosts over the last days — the NAT address
//! every agent of an office reports, the SaaS sign-in domain, a scanner,
//! the backup service account — says nothing about which incident an alert
//! belongs to, however strong its kind. Its linking weight falls as its
//! share rises (IDF-like), on top of the tenant's weights and ignore list,
//! so no one has to discover and list each such entity by hand.
//!
//! Kept per tenant in `entity_hosts`: (entity, host) with the last event
//! time they were seen together. A delivery records its pairs before it is
//! correlated, so a backfill learns its own noise.
//!
//! Background is persistent, a campaign is a burst: the SaaS domain, the
//! scanner and the NAT address are seen day after day, while a phishing
//! URL clicked on five machines is seen within an hour or two. An entity
//! whose sightings (the last times it was seen with each of its hosts) all
//! fall within one linking window keeps its weight up to a larger share of
//! the tenant's hosts (`burst_share`, a quarter by default): beyond that it
//! is background even in its first hours (the proxy of a tenant's first
//! day). This also keeps an estate's first days honest, when the count of
//! the tenant's hosts is still small and every share looks large.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbBackend, EntityTrait, Statement};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::pipeline::observables::{Kind, LOOKUP_CHUNK, Observable, Role, by_kind};
use crate::store::TenantTx;
use crate::store::entity::entity_host;

/// How prevalence turns into a weight (a tenant may tune it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[derive(utoipa::ToSchema)]
pub struct Noise {
    /// The rolling period over which hosts are counted (days of event time).
    pub period_days: i64,
    /// An entity seen with fewer hosts than this is never noise (an
    /// incident that spread to a few machines stays one case).
    pub min_hosts: u32,
    /// At or below this share of the tenant's hosts an entity keeps its
    /// full weight ...
    pub rare_share: f32,
    /// ... at or above this share it weighs nothing; in between its weight
    /// falls with the logarithm of the share.
    pub common_share: f32,
    /// An entity seen only within one linking window (a campaign's burst)
    /// keeps its full weight below this share.
    #[serde(default = "default_burst_share")]
    pub burst_share: f32,
}

fn default_burst_share() -> f32 {
    0.25
}

impl Default for Noise {
    fn default() -> Self {
        Noise {
            period_days: 7,
            min_hosts: 4,
            rare_share: 0.02,
            common_share: 0.10,
            burst_share: default_burst_share(),
        }
    }
}

impl Noise {
    pub fn validated(self) -> crate::Result<Self> {
        let bad = |m: &str| Err(crate::Error::Invalid(format!("noise: {m}")));
        if !(1..=90).contains(&self.period_days) {
            return bad("period_days must be 1 to 90");
        }
        if !(1..=1_000_000).contains(&self.min_hosts) {
            return bad("min_hosts must be 1 to 1000000");
        }
        if !(self.rare_share > 0.0 && self.rare_share < self.common_share && self.common_share <= 1.0) {
            return bad("0 < rare_share < common_share <= 1");
        }
        if !(self.burst_share >= self.common_share && self.burst_share <= 1.0) {
            return bad("common_share <= burst_share <= 1");
        }
        Ok(self)
    }

    pub fn period(&self) -> Duration {
        Duration::days(self.period_days)
    }

    /// The factor (0 to 1) an entity's weight is multiplied by when it was
    /// seen with `hosts` of the tenant's `tenant_hosts` hosts, in `role`.
    /// A device's own address (or an address of no stated side, as ECS's
    /// `related.ip`) seen with two machines in the period is a shared or
    /// reassigned address (NAT, proxy, DHCP), not the device's: it weighs
    /// nothing. An entity seen only in a `burst` (all its sightings within
    /// one linking window) keeps its weight.
    pub fn multiplier(&self, kind: Kind, role: Role, hosts: u64, tenant_hosts: u64, burst: bool) -> f32 {
        if kind == Kind::Ip && matches!(role, Role::Device | Role::Other) && hosts >= 2 {
            return 0.0;
        }
        if hosts < u64::from(self.min_hosts) || tenant_hosts == 0 {
            return 1.0;
        }
        let share = hosts as f32 / std::cmp::max(tenant_hosts, hosts) as f32;
        if share <= self.rare_share || (burst && share < self.burst_share) {
            1.0
        } else if share >= self.common_share {
            0.0
        } else {
            ((self.common_share / share).ln() / (self.common_share / self.rare_share).ln()).clamp(0.0, 1.0)
        }
    }
}

/// A pair's time is rewritten only when the new sighting is this much later
/// (live traffic would otherwise rewrite every pair on every delivery).
pub const REFRESH: Duration = Duration::hours(6);

/// The hosts an alert is about (the hosts it names, not the domain
/// controller or console it mentions).
pub fn hosts_of(observables: &[Observable]) -> impl Iterator<Item = &str> {
    observables
        .iter()
        .filter(|o| o.kind == Kind::Host && matches!(o.role, Role::Device | Role::Source | Role::Destination))
        .map(|o| o.value.as_str())
}

/// What is known of a set of entities' prevalence.
#[derive(Debug, Clone, Default)]
pub struct Prevalence {
    /// Distinct hosts of the tenant seen in the period.
    pub tenant_hosts: u64,
    /// Per entity: hosts, and the span from the earliest to the latest of
    /// the last sightings with each of them.
    hosts: HashMap<(Kind, String), (u64, Duration)>,
}

impl Prevalence {
    /// With how many hosts the entity was seen in the period.
    pub fn hosts(&self, kind: Kind, value: &str) -> u64 {
        self.hosts.get(&(kind, value.to_owned())).map_or(0, |h| h.0)
    }
    /// Over how long the entity's sightings with its hosts spread.
    pub fn span(&self, kind: Kind, value: &str) -> Duration {
        self.hosts
            .get(&(kind, value.to_owned()))
            .map_or(Duration::zero(), |h| h.1)
    }
}

/// Each (entity, host) pair of the alerts — for the entities `counted`
/// accepts — at its last sighting: what [`observe`] records and [`learn`]
/// counts.
fn last_sightings<'a>(
    alerts: &[(DateTime<Utc>, &'a [Observable])],
    counted: impl Fn(&Observable) -> bool,
) -> HashMap<(Kind, &'a str, &'a str), DateTime<Utc>> {
    let mut pairs: HashMap<(Kind, &'a str, &'a str), DateTime<Utc>> = HashMap::new();
    for (at, obs) in alerts {
        let hosts: Vec<&str> = hosts_of(obs).collect();
        for o in obs.iter().filter(|o| counted(o)) {
            for h in &hosts {
                let e = pairs.entry((o.kind, o.value.as_str(), h)).or_insert(*at);
                *e = std::cmp::max(*e, *at);
            }
        }
    }
    pairs
}

/// Prevalence learned in memory from a set of alerts, as [`observe`] then
/// [`read`] would find it in the database after recording them (each
/// (entity, host) pair at its last sighting; hosts and span per entity,
/// over every sighting): for grouping outside a transaction (the
/// in-memory benchmark, what-if analyses of settings).
pub fn learn(alerts: &[(DateTime<Utc>, &[Observable])], counted: impl Fn(&Observable) -> bool) -> Prevalence {
    let tenant: std::collections::HashSet<&str> = alerts.iter().flat_map(|(_, obs)| hosts_of(obs)).collect();
    let last = last_sightings(alerts, counted);
    // Per entity: hosts, earliest and latest last-sighting.
    type Seen = (u64, DateTime<Utc>, DateTime<Utc>);
    let mut agg: HashMap<(Kind, String), Seen> = HashMap::new();
    for ((kind, value, _), at) in last {
        let e = agg.entry((kind, value.to_owned())).or_insert((0, at, at));
        e.0 += 1;
        e.1 = std::cmp::min(e.1, at);
        e.2 = std::cmp::max(e.2, at);
    }
    Prevalence {
        tenant_hosts: tenant.len() as u64,
        hosts: agg
            .into_iter()
            .map(|(k, (n, lo, hi))| (k, (n, hi - lo)))
            .collect(),
    }
}

/// Records the (entity, host) pairs of a delivery's alerts — for the
/// entities `counted` accepts — and reads back the prevalence of those
/// entities over the period before the delivery's earliest alert.
pub async fn observe<'a>(
    tx: &TenantTx,
    noise: &Noise,
    alerts: &[(DateTime<Utc>, &'a [Observable])],
    counted: impl Fn(&Observable) -> bool,
) -> Result<Prevalence> {
    let mut entities: Vec<(Kind, &'a str)> = Vec::new();
    for (_, obs) in alerts {
        for o in obs.iter().filter(|o| counted(o)) {
            if !entities.contains(&(o.kind, o.value.as_str())) {
                entities.push((o.kind, o.value.as_str()));
            }
        }
    }
    let pairs = last_sightings(alerts, &counted);
    let earliest = alerts.iter().map(|a| a.0).min();
    let latest = alerts.iter().map(|a| a.0).max();
    let (Some(earliest), Some(latest)) = (earliest, latest) else {
        return Ok(Prevalence::default());
    };
    // In key order: concurrent writers lock rows in one order.
    let mut rows: Vec<_> = pairs.into_iter().collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let cutoff = latest - REFRESH;
    for chunk in rows.chunks(1_000) {
        let models = chunk
            .iter()
            .map(|((kind, value, host), at)| entity_host::ActiveModel {
                tenant_id: Set(tx.tenant().0),
                kind: Set(kind.as_str().to_owned()),
                value: Set((*value).to_owned()),
                host: Set((*host).to_owned()),
                last_seen: Set(*at),
            });
        entity_host::Entity::insert_many(models)
            .on_conflict(
                OnConflict::columns([
                    entity_host::Column::TenantId,
                    entity_host::Column::Kind,
                    entity_host::Column::Value,
                    entity_host::Column::Host,
                ])
                .update_column(entity_host::Column::LastSeen)
                .action_and_where(
                    Expr::col((entity_host::Entity, entity_host::Column::LastSeen))
                        .lt(Expr::col((Alias::new("excluded"), entity_host::Column::LastSeen)))
                        .and(Expr::col((entity_host::Entity, entity_host::Column::LastSeen)).lt(cutoff)),
                )
                .to_owned(),
            )
            .exec_without_returning(&**tx)
            .await?;
    }
    read(tx, noise, &entities, earliest).await
}

/// The prevalence of `entities` over the period before `at`.
pub async fn read(
    tx: &TenantTx,
    noise: &Noise,
    entities: &[(Kind, &str)],
    at: DateTime<Utc>,
) -> Result<Prevalence> {
    let since = at - noise.period();
    let tenant = tx.tenant().0;
    let backend = tx.get_database_backend();
    let mut out = Prevalence::default();
    let q = Query::select()
        .expr_as(Expr::col(entity_host::Column::Host).count(), Alias::new("n"))
        .from(entity_host::Entity)
        .and_where(Expr::col(entity_host::Column::TenantId).eq(tenant))
        .and_where(Expr::col(entity_host::Column::Kind).eq(Kind::Host.as_str()))
        .and_where(Expr::col(entity_host::Column::Value).equals(entity_host::Column::Host))
        .and_where(Expr::col(entity_host::Column::LastSeen).gte(since))
        .to_owned();
    if let Some(r) = tx.query_one_raw(backend.build(&q)).await? {
        out.tenant_hosts = u64::try_from(r.try_get::<i64>("", "n")?).unwrap_or(0);
    }
    // One indexed lookup per kind (an OR-list of pairs became a scan of the
    // tenant's rows on SQLite; see `correlate::reachable`).
    for (kind, values) in by_kind(entities.iter().copied()) {
        for chunk in values.chunks(LOOKUP_CHUNK) {
            for r in tx
                .query_all_raw(hosts_statement(backend, tenant, kind, chunk, since))
                .await?
            {
                let n: i64 = r.try_get("", "n")?;
                let first: DateTime<Utc> = r.try_get("", "first")?;
                let last: DateTime<Utc> = r.try_get("", "last")?;
                out.hosts.insert(
                    (kind, r.try_get("", "value")?),
                    (u64::try_from(n).unwrap_or(0), last - first),
                );
            }
        }
    }
    Ok(out)
}

/// One statement of [`read`]: per value of one kind, its hosts in the
/// period and the span of its sightings. On PostgreSQL each value is its
/// own lookup by the table's whole key (a `LATERAL` subquery per value):
/// as `value IN (...)`, a plan cached while the table was small read every
/// row of the kind and filtered (seen in `bench-ingest` at breadth).
pub fn hosts_statement(
    backend: DbBackend,
    tenant: uuid::Uuid,
    kind: Kind,
    values: &[&str],
    since: DateTime<Utc>,
) -> Statement {
    if backend == DbBackend::Postgres {
        let sql = format!(
            "SELECT w.v AS value, x.n, x.first, x.last FROM (VALUES {}) AS w(v) CROSS JOIN LATERAL \
             (SELECT COUNT(e.host) AS n, MIN(e.last_seen) AS first, MAX(e.last_seen) AS last \
             FROM entity_hosts e WHERE e.tenant_id = $1 AND e.kind = $2 AND e.value = w.v \
             AND e.last_seen >= $3) AS x WHERE x.n > 0",
            pg_values(4, values.len())
        );
        let mut args: Vec<sea_orm::Value> = vec![tenant.into(), kind.as_str().into(), since.into()];
        args.extend(values.iter().map(|v| sea_orm::Value::from(*v)));
        return Statement::from_sql_and_values(backend, sql, args);
    }
    backend.build(
        &Query::select()
            .column(entity_host::Column::Value)
            .expr_as(Expr::col(entity_host::Column::Host).count(), Alias::new("n"))
            .expr_as(
                Expr::col(entity_host::Column::LastSeen).min(),
                Alias::new("first"),
            )
            .expr_as(Expr::col(entity_host::Column::LastSeen).max(), Alias::new("last"))
            .from(entity_host::Entity)
            .and_where(Expr::col(entity_host::Column::TenantId).eq(tenant))
            .and_where(Expr::col(entity_host::Column::Kind).eq(kind.as_str()))
            .and_where(Expr::col(entity_host::Column::Value).is_in(values.iter().copied()))
            .and_where(Expr::col(entity_host::Column::LastSeen).gte(since))
            .group_by_col(entity_host::Column::Value)
            .to_owned(),
    )
}

/// `($first),($first+1),...`: `n` one-column rows of PostgreSQL parameters.
pub fn pg_values(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("(${i})"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_falls_with_share() {
        let n = Noise::default();
        let m = |h, t| n.multiplier(Kind::Domain, Role::Destination, h, t, false);
        assert_eq!(m(1, 200), 1.0);
        assert_eq!(m(3, 10), 1.0, "fewer than min_hosts is never noise");
        assert_eq!(m(4, 200), 1.0, "2% keeps its weight");
        assert_eq!(m(20, 200), 0.0, "10% weighs nothing");
        assert_eq!(m(100, 200), 0.0);
        let mid = m(8, 200);
        assert!(mid > 0.0 && mid < 1.0, "{mid}");
        assert!(m(6, 200) > mid && mid > m(12, 200));
        assert_eq!(m(5, 0), 1.0);
        assert_eq!(
            n.multiplier(Kind::Domain, Role::Destination, 40, 200, true),
            1.0,
            "a burst is a campaign, not background"
        );
        assert_eq!(n.multiplier(Kind::Domain, Role::Destination, 40, 200, false), 0.0);
        assert_eq!(
            n.multiplier(Kind::Domain, Role::Destination, 100, 200, true),
            0.0,
            "half the fleet in one burst is background (a tenant's first day)"
        );
        assert_eq!(n.multiplier(Kind::Ip, Role::Device, 1, 200, false), 1.0);
        assert_eq!(
            n.multiplier(Kind::Ip, Role::Device, 2, 200, true),
            0.0,
            "a device address two machines use, even at once"
        );
        assert_eq!(
            n.multiplier(Kind::Host, Role::Device, 2, 200, false),
            1.0,
            "a host with a peer is no noise"
        );
        assert!(
            Noise {
                rare_share: 0.2,
                ..Noise::default()
            }
            .validated()
            .is_err()
        );
    }
}
