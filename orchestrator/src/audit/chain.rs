//! The audit hash chain, its signed checkpoints, and verification.
//!
//! Each event's hash is SHA-256 over the canonical JSON array
//! `[1, chain, seq, prev_hash, id, tenant_id, at, actor, actor_role, action,
//! target, summary, source_ip, request_id]` (`at` in RFC 3339 with
//! microseconds, UTC). The first event of a chain follows [`GENESIS`].
//!
//! A checkpoint signs `["vigil-audit-checkpoint/1", chain, seq, hash, at]`
//! with an Ed25519 key kept in a file beside the master key, never in the
//! database: someone who can write the database can rewrite every hash, but
//! not sign, so cutting the tail or rewriting the whole chain is caught by
//! the checkpoints. Verification walks a chain in sequence order (live,
//! page by page, or from an export) and names the first broken sequence
//! number and why.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, SecondsFormat, SubsecRound, Utc};
use ed25519_dalek::Signer as _;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Recorded;
use crate::canonical::canonical_json;
use crate::store::entity::{audit_checkpoint, audit_event, tenant};
use crate::{Clock, Error, PlatformTx, Result, Store, TenantId, TenantTx};

/// What the first event of a chain follows.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain an event of `tenant` (None: a platform event) belongs to.
pub fn chain_of(tenant: Option<TenantId>) -> String {
    match tenant {
        Some(t) => format!("tenant:{}", t.0.hyphenated()),
        None => "platform".to_owned(),
    }
}

fn at_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The hash of event `e` at place `seq` of `chain`, following `prev`:
/// SHA-256 of the canonical JSON array (see the module doc), written
/// straight into the hasher (verification hashes a million events).
pub fn event_hash(chain: &str, seq: i64, prev: &str, e: &Recorded) -> String {
    use crate::canonical::{push_str, write_canonical};
    use std::fmt::Write as _;
    let mut out = String::with_capacity(384);
    let mut uuid = uuid::Uuid::encode_buffer();
    let text = |out: &mut String, v: Option<&str>| {
        match v {
            Some(v) => push_str(out, v),
            None => out.push_str("null"),
        }
        out.push(',');
    };
    out.push_str("[1,");
    text(&mut out, Some(chain));
    let _ = write!(out, "{seq},");
    text(&mut out, Some(prev));
    text(&mut out, Some(e.id.hyphenated().encode_lower(&mut uuid)));
    match e.tenant_id {
        Some(t) => text(&mut out, Some(t.hyphenated().encode_lower(&mut uuid))),
        None => text(&mut out, None),
    }
    text(&mut out, Some(&at_text(e.at)));
    text(&mut out, Some(&e.actor));
    text(&mut out, e.actor_role.as_deref());
    text(&mut out, Some(&e.action));
    text(&mut out, Some(&e.target));
    write_canonical(&e.summary, &mut out);
    out.push(',');
    text(&mut out, e.source_ip.as_deref());
    text(&mut out, e.request_id.as_deref());
    out.pop();
    out.push(']');
    hex::encode(Sha256::digest(out.as_bytes()))
}

/// The definition [`event_hash`] implements, kept for its test.
#[cfg(test)]
fn event_hash_by_definition(chain: &str, seq: i64, prev: &str, e: &Recorded) -> String {
    crate::canonical::hash_json(&json!([
        1,
        chain,
        seq,
        prev,
        e.id.hyphenated().to_string(),
        e.tenant_id.map(|t| t.hyphenated().to_string()),
        at_text(e.at),
        e.actor,
        e.actor_role,
        e.action,
        e.target,
        e.summary,
        e.source_ip,
        e.request_id,
    ]))
}

/// Which chain: one tenant's, or the platform's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Tenant(TenantId),
    Platform,
}

impl Scope {
    pub fn chain(self) -> String {
        chain_of(self.tenant())
    }

    pub fn tenant(self) -> Option<TenantId> {
        match self {
            Scope::Tenant(t) => Some(t),
            Scope::Platform => None,
        }
    }

    /// A transaction that sees this chain (RLS on PostgreSQL).
    pub async fn begin(self, store: &Store) -> Result<ScopeTx> {
        Ok(match self {
            Scope::Tenant(t) => ScopeTx::Tenant(store.begin_tenant(t).await?),
            Scope::Platform => ScopeTx::Platform(store.begin_platform().await?),
        })
    }

    /// A transaction that only reads this chain.
    pub async fn begin_read(self, store: &Store) -> Result<ScopeTx> {
        Ok(match self {
            Scope::Tenant(t) => ScopeTx::Tenant(store.begin_tenant_read(t).await?),
            Scope::Platform => ScopeTx::Platform(store.begin_platform().await?),
        })
    }
}

/// A tenant or platform transaction.
#[derive(Debug)]
pub enum ScopeTx {
    Tenant(TenantTx),
    Platform(PlatformTx),
}

impl std::ops::Deref for ScopeTx {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        match self {
            ScopeTx::Tenant(t) => t,
            ScopeTx::Platform(p) => p,
        }
    }
}

impl ScopeTx {
    pub async fn commit(self) -> Result<()> {
        match self {
            ScopeTx::Tenant(t) => t.commit().await,
            ScopeTx::Platform(p) => p.commit().await,
        }
    }
}

/// The checkpoint signing key (Ed25519), held in a file, never in the
/// database.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public().key_id())
    }
}

impl SigningKey {
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        Self(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// 64 hex digits (the 32-byte seed).
    pub fn from_hex(text: &str) -> std::result::Result<Self, String> {
        let bytes = hex::decode(text.trim()).map_err(|_| "not hex".to_owned())?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "an audit signing key is 32 bytes (64 hex digits)".to_owned())?;
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    fn sign(&self, msg: &[u8]) -> String {
        hex::encode(self.0.sign(msg).to_bytes())
    }
}

/// The public half, for auditors (`vigil audit key`).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl PublicKey {
    pub fn from_hex(text: &str) -> std::result::Result<Self, String> {
        let bytes = hex::decode(text.trim()).map_err(|_| "a public key is 64 hex digits".to_owned())?;
        let raw: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "a public key is 32 bytes (64 hex digits)".to_owned())?;
        ed25519_dalek::VerifyingKey::from_bytes(&raw)
            .map(Self)
            .map_err(|_| "not an Ed25519 public key".to_owned())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    /// The first 8 bytes of SHA-256 of the key, in hex: what a checkpoint
    /// names its key by.
    pub fn key_id(&self) -> String {
        hex::encode(&Sha256::digest(self.0.to_bytes())[..8])
    }

    fn verify(&self, msg: &[u8], signature_hex: &str) -> bool {
        let Ok(bytes) = hex::decode(signature_hex) else {
            return false;
        };
        let Ok(raw) = <[u8; 64]>::try_from(bytes.as_slice()) else {
            return false;
        };
        self.0
            .verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&raw))
            .is_ok()
    }
}

/// A signed statement that `chain`'s event `seq` has hash `hash`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub chain: String,
    pub tenant_id: Option<uuid::Uuid>,
    pub seq: i64,
    pub hash: String,
    pub at: DateTime<Utc>,
    pub key_id: String,
    pub signature: String,
}

impl Checkpoint {
    fn message(chain: &str, seq: i64, hash: &str, at: DateTime<Utc>) -> Vec<u8> {
        canonical_json(&json!([
            "vigil-audit-checkpoint/1",
            chain,
            seq,
            hash,
            at_text(at)
        ]))
        .into_bytes()
    }

    /// Whether `key` signed exactly this checkpoint.
    pub fn signed_by(&self, key: &PublicKey) -> bool {
        self.key_id == key.key_id()
            && key.verify(
                &Self::message(&self.chain, self.seq, &self.hash, self.at),
                &self.signature,
            )
    }
}

impl From<audit_checkpoint::Model> for Checkpoint {
    fn from(m: audit_checkpoint::Model) -> Self {
        Self {
            chain: m.chain,
            tenant_id: m.tenant_id,
            seq: m.seq,
            hash: m.hash,
            at: m.at,
            key_id: m.key_id,
            signature: m.signature,
        }
    }
}

/// When the head is signed: after `every` events, or `interval` after the
/// last checkpoint if anything was written since.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub every: i64,
    pub interval: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            every: 1_000,
            interval: Duration::minutes(10),
        }
    }
}

impl Policy {
    /// How long events may stay unsigned before verification calls the
    /// checkpoint missing: two intervals (the checkpointer runs every
    /// minute; a restart in between is allowed for).
    pub fn max_unsigned(&self) -> Duration {
        self.interval * 2
    }
}

/// The chain's head: its last (seq, hash), if it has events.
pub async fn head(conn: &impl ConnectionTrait, chain: &str) -> Result<Option<(i64, String)>> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => "SELECT seq, hash FROM audit_heads WHERE chain = $1",
        _ => "SELECT seq, hash FROM audit_heads WHERE chain = ?",
    };
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [chain.to_owned().into()],
        ))
        .await?;
    Ok(match row {
        Some(r) => Some((r.try_get("", "seq")?, r.try_get("", "hash")?)),
        None => None,
    })
}

/// Where a chain stands: its head and its last checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub chain: String,
    pub head_seq: Option<i64>,
    pub head_hash: Option<String>,
    pub last_checkpoint: Option<Checkpoint>,
}

pub async fn status(conn: &impl ConnectionTrait, chain: &str) -> Result<Status> {
    let h = head(conn, chain).await?;
    let last = audit_checkpoint::Entity::find()
        .filter(audit_checkpoint::Column::Chain.eq(chain))
        .order_by_desc(audit_checkpoint::Column::Seq)
        .limit(1)
        .one(conn)
        .await?
        .map(Checkpoint::from);
    Ok(Status {
        chain: chain.to_owned(),
        head_seq: h.as_ref().map(|h| h.0),
        head_hash: h.map(|h| h.1),
        last_checkpoint: last,
    })
}

/// The chain's checkpoints in sequence order.
pub async fn checkpoints(conn: &impl ConnectionTrait, chain: &str) -> Result<Vec<Checkpoint>> {
    Ok(audit_checkpoint::Entity::find()
        .filter(audit_checkpoint::Column::Chain.eq(chain))
        .order_by_asc(audit_checkpoint::Column::Seq)
        .all(conn)
        .await?
        .into_iter()
        .map(Checkpoint::from)
        .collect())
}

/// Signs the chain's head if the policy says it is due (`force`: if it has
/// moved at all). Another node signing the same head at once is harmless.
pub async fn checkpoint(
    store: &Store,
    scope: Scope,
    key: &SigningKey,
    clock: &dyn Clock,
    policy: Policy,
    force: bool,
) -> Result<Option<Checkpoint>> {
    let chain = scope.chain();
    let tx = scope.begin(store).await?;
    let st = status(&*tx, &chain).await?;
    let (Some(seq), Some(hash)) = (st.head_seq, st.head_hash) else {
        return Ok(None);
    };
    let last = st.last_checkpoint;
    let now = clock.now().trunc_subsecs(6);
    let due = match &last {
        None => true,
        Some(l) if l.seq >= seq => false,
        Some(l) => force || seq - l.seq >= policy.every || now - l.at >= policy.interval,
    };
    if !due {
        return Ok(None);
    }
    let signature = key.sign(&Checkpoint::message(&chain, seq, &hash, now));
    let cp = Checkpoint {
        chain: chain.clone(),
        tenant_id: scope.tenant().map(|t| t.0),
        seq,
        hash,
        at: now,
        key_id: key.public().key_id(),
        signature,
    };
    let inserted = audit_checkpoint::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        chain: Set(cp.chain.clone()),
        tenant_id: Set(cp.tenant_id),
        seq: Set(cp.seq),
        hash: Set(cp.hash.clone()),
        at: Set(cp.at),
        key_id: Set(cp.key_id.clone()),
        signature: Set(cp.signature.clone()),
    }
    .insert(&*tx)
    .await;
    match inserted {
        Ok(_) => {
            tx.commit().await?;
            Ok(Some(cp))
        }
        // Another node signed this head first.
        Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Prunes the chain's front written before `cutoff`, up to its last signed
/// checkpoint there (so verification still starts from a signed hash), in
/// batches of `batch`; how many events were deleted. The database refuses
/// anything younger than 90 days or not behind a checkpoint.
pub async fn prune_front(
    conn: &impl ConnectionTrait,
    chain: &str,
    cutoff: DateTime<Utc>,
    batch: u64,
) -> Result<u64> {
    let backend = conn.get_database_backend();
    let (p1, p2) = match backend {
        DbBackend::Postgres => ("$1", "$2"),
        _ => ("?", "?"),
    };
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT MAX(c.seq) AS upto FROM audit_checkpoints c                  JOIN audit_events e ON e.chain = c.chain AND e.seq = c.seq                  WHERE c.chain = {p1} AND e.at < {p2}"
            ),
            [chain.to_owned().into(), cutoff.into()],
        ))
        .await?;
    let Some(upto) = row.and_then(|r| r.try_get::<Option<i64>>("", "upto").ok().flatten()) else {
        return Ok(0);
    };
    let mut deleted = 0;
    loop {
        let ids: Vec<uuid::Uuid> = audit_event::Entity::find()
            .filter(audit_event::Column::Chain.eq(chain))
            .filter(audit_event::Column::Seq.lte(upto))
            .order_by_asc(audit_event::Column::Seq)
            .limit(batch)
            .select_only()
            .column(audit_event::Column::Id)
            .into_tuple()
            .all(conn)
            .await?;
        if ids.is_empty() {
            return Ok(deleted);
        }
        deleted += audit_event::Entity::delete_many()
            .filter(audit_event::Column::Id.is_in(ids))
            .exec(conn)
            .await?
            .rows_affected;
    }
}

/// Every chain: the platform's and each tenant's.
pub async fn scopes(store: &Store) -> Result<Vec<Scope>> {
    let tx = store.begin_platform().await?;
    let tenants = tenant::Entity::find()
        .order_by_asc(tenant::Column::Id)
        .all(&*tx)
        .await?;
    tx.commit().await?;
    Ok(std::iter::once(Scope::Platform)
        .chain(tenants.into_iter().map(|t| Scope::Tenant(TenantId(t.id))))
        .collect())
}

/// One checkpointer round over every chain; the number signed.
pub async fn checkpoint_all(
    store: &Store,
    key: &SigningKey,
    clock: &dyn Clock,
    policy: Policy,
    force: bool,
) -> Result<usize> {
    let mut signed = 0;
    for scope in scopes(store).await? {
        if checkpoint(store, scope, key, clock, policy, force)
            .await?
            .is_some()
        {
            signed += 1;
        }
    }
    Ok(signed)
}

/// Why a chain does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// An event's content no longer matches its hash, or its hash was
    /// recomputed after an edit.
    Edited,
    /// Events are missing (a gap in the sequence, or a front pruned without
    /// a signed checkpoint vouching for it).
    Deleted,
    /// An event carries another place in the chain than it was written at.
    Reordered,
    /// Events a signed checkpoint or the chain head vouches for are gone.
    TailCut,
    /// The chain does not match what a signed checkpoint says of it (the
    /// chain was rewritten with recomputed hashes).
    Rewritten,
    /// A checkpoint's signature is not the trusted key's.
    CheckpointForged,
    /// Events older than the checkpoint interval allows are signed by no
    /// checkpoint.
    CheckpointMissing,
    /// The export is not a well-formed export (a line that does not parse,
    /// a missing header or end, counts that do not match).
    Malformed,
}

impl BreakKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakKind::Edited => "edited",
            BreakKind::Deleted => "deleted",
            BreakKind::Reordered => "reordered",
            BreakKind::TailCut => "tail cut",
            BreakKind::Rewritten => "rewritten",
            BreakKind::CheckpointForged => "checkpoint forged",
            BreakKind::CheckpointMissing => "checkpoint missing",
            BreakKind::Malformed => "malformed export",
        }
    }
}

/// The first break: where and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broken {
    pub seq: i64,
    pub kind: BreakKind,
    pub why: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seq {}: {}: {}", self.seq, self.kind.as_str(), self.why)
    }
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub chain: String,
    /// Events checked.
    pub events: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    /// Checkpoints whose signature was checked against the key.
    pub checkpoints: u64,
    /// Whether a key was given (without one, checkpoints are not checked).
    pub key_checked: bool,
    /// Events from before the chain existed (not verifiable).
    pub unchained: u64,
    /// The chain starts after a front pruned behind a signed checkpoint.
    pub pruned_before: Option<i64>,
    pub broken: Option<Broken>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.broken.is_none()
    }
}

/// Where a verification walk may start and end.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bounds {
    /// A ranged export: the first event may follow one not in the export.
    pub start_anywhere: bool,
    /// A ranged export: later events and checkpoints are not in it.
    pub end_anywhere: bool,
}

/// Walks one chain in sequence order; stops at the first break.
#[derive(Debug)]
pub struct Verifier {
    chain: String,
    key: Option<PublicKey>,
    bounds: Bounds,
    /// seq → Ok(hash) of a checkpoint signed by the key (or unchecked
    /// without a key), Err(why) of one that is not.
    checkpoints: BTreeMap<i64, std::result::Result<String, String>>,
    report: Report,
    prev: Option<(i64, String)>,
    /// When the first event after the last checkpoint was written.
    first_unsigned: Option<(i64, DateTime<Utc>)>,
}

impl Verifier {
    pub fn new(chain: &str, key: Option<PublicKey>, checkpoints: &[Checkpoint], bounds: Bounds) -> Self {
        let mut map = BTreeMap::new();
        let mut checked = 0;
        for cp in checkpoints.iter().filter(|c| c.chain == chain) {
            let verdict = match &key {
                Some(k) if cp.key_id != k.key_id() => Err(format!(
                    "signed by key {} where the trusted key is {}",
                    cp.key_id,
                    k.key_id()
                )),
                Some(k) if !cp.signed_by(k) => Err("its signature does not verify".to_owned()),
                _ => Ok(cp.hash.clone()),
            };
            if key.is_some() && verdict.is_ok() {
                checked += 1;
            }
            // A forged checkpoint beside a genuine one at the same seq is
            // still a forgery.
            match map.get(&cp.seq) {
                Some(Err(_)) => {}
                _ => {
                    map.insert(cp.seq, verdict);
                }
            }
        }
        Self {
            chain: chain.to_owned(),
            report: Report {
                chain: chain.to_owned(),
                events: 0,
                first_seq: None,
                last_seq: None,
                checkpoints: checked,
                key_checked: key.is_some(),
                unchained: 0,
                pruned_before: None,
                broken: None,
            },
            key,
            bounds,
            checkpoints: map,
            prev: None,
            first_unsigned: None,
        }
    }

    pub fn broken(&self) -> Option<&Broken> {
        self.report.broken.as_ref()
    }

    /// Counts an event from before the chain.
    pub fn unchained(&mut self) {
        self.report.unchained += 1;
    }

    fn fail(&mut self, seq: i64, kind: BreakKind, why: String) {
        if self.report.broken.is_none() {
            self.report.broken = Some(Broken { seq, kind, why });
        }
    }

    /// Marks the walk broken for a reason found outside the chain (an
    /// export that does not parse).
    pub fn malformed(&mut self, seq: i64, why: String) {
        self.fail(seq, BreakKind::Malformed, why);
    }

    /// The next event in sequence order. Returns false once broken.
    pub fn push(&mut self, e: &Recorded) -> bool {
        if self.report.broken.is_some() {
            return false;
        }
        let (Some(seq), Some(prev_hash), Some(hash)) = (e.seq, e.prev_hash.as_deref(), e.hash.as_deref())
        else {
            self.fail(
                e.seq.unwrap_or(0),
                BreakKind::Edited,
                format!("event {} has lost its chain fields", e.id),
            );
            return false;
        };
        if e.chain.as_deref() != Some(self.chain.as_str()) {
            self.fail(
                seq,
                BreakKind::Edited,
                format!("it names chain {:?}, not {}", e.chain, self.chain),
            );
            return false;
        }
        match &self.prev {
            None if seq == 1 => {
                if prev_hash != GENESIS {
                    self.fail(
                        1,
                        BreakKind::Edited,
                        "the first event does not follow the genesis hash".into(),
                    );
                    return false;
                }
            }
            None => match self.checkpoints.get(&(seq - 1)) {
                Some(Ok(h)) if h == prev_hash => self.report.pruned_before = Some(seq),
                _ if self.bounds.start_anywhere => {}
                _ => {
                    self.fail(
                        1,
                        BreakKind::Deleted,
                        format!(
                            "the chain starts at seq {seq}: events 1..{} are missing and no signed checkpoint vouches for seq {}",
                            seq - 1,
                            seq - 1
                        ),
                    );
                    return false;
                }
            },
            Some((p, _)) if seq > p + 1 => {
                let missing = if seq == p + 2 {
                    format!("event {} is missing", p + 1)
                } else {
                    format!("events {}..{} are missing", p + 1, seq - 1)
                };
                self.fail(p + 1, BreakKind::Deleted, missing);
                return false;
            }
            Some((p, _)) if seq <= *p => {
                self.fail(
                    seq,
                    BreakKind::Reordered,
                    format!("seq {seq} comes after seq {p}"),
                );
                return false;
            }
            Some(_) => {}
        }
        let computed = event_hash(&self.chain, seq, prev_hash, e);
        if computed != hash {
            // Written at another place? (Its hash covers its seq.)
            let elsewhere = (1.max(seq - 64)..=seq + 64)
                .filter(|s| *s != seq)
                .find(|s| event_hash(&self.chain, *s, prev_hash, e) == hash);
            match elsewhere {
                Some(s) => self.fail(
                    seq,
                    BreakKind::Reordered,
                    format!("the event at seq {seq} ({}) was written as seq {s}", e.id),
                ),
                None => self.fail(
                    seq,
                    BreakKind::Edited,
                    format!("its content no longer matches its hash (event {})", e.id),
                ),
            }
            return false;
        }
        if let Some((p, ph)) = &self.prev
            && ph != prev_hash
        {
            let p = *p;
            self.fail(
                p,
                BreakKind::Edited,
                format!("seq {seq} follows another hash than seq {p} has: seq {p} was changed and its hash recomputed"),
            );
            return false;
        }
        match self.checkpoints.get(&seq).cloned() {
            Some(Err(why)) => {
                self.fail(
                    seq,
                    BreakKind::CheckpointForged,
                    format!("the checkpoint at seq {seq} is {why}"),
                );
                return false;
            }
            Some(Ok(h)) if h != hash => {
                self.fail(
                    seq,
                    BreakKind::Rewritten,
                    format!("the event at seq {seq} is not the one the signed checkpoint vouches for"),
                );
                return false;
            }
            Some(Ok(_)) => self.first_unsigned = None,
            None => {
                if self.first_unsigned.is_none() {
                    self.first_unsigned = Some((seq, e.at));
                }
            }
        }
        self.report.events += 1;
        self.report.first_seq.get_or_insert(seq);
        self.report.last_seq = Some(seq);
        self.prev = Some((seq, hash.to_owned()));
        true
    }

    /// After the last event: the tail against the checkpoints and the
    /// chain's head (`head`: the head as the database or the export's header
    /// states it), and events left unsigned longer than `max_unsigned`
    /// before `now`.
    pub fn finish(
        mut self,
        head: Option<(i64, String)>,
        now: DateTime<Utc>,
        max_unsigned: Option<Duration>,
    ) -> Report {
        if self.report.broken.is_some() {
            return self.report;
        }
        let last = self.prev.as_ref().map(|(s, _)| *s).unwrap_or(0);
        // A forged checkpoint beyond the end is still a forgery.
        if let Some((seq, why)) = self
            .checkpoints
            .range(last + 1..)
            .find_map(|(s, v)| v.as_ref().err().map(|w| (*s, w.clone())))
            .filter(|_| !self.bounds.end_anywhere)
        {
            self.fail(
                seq,
                BreakKind::CheckpointForged,
                format!("the checkpoint at seq {seq} is {why}"),
            );
            return self.report;
        }
        if !self.bounds.end_anywhere {
            if let Some((&signed, _)) = self.checkpoints.range(last + 1..).next_back() {
                self.fail(
                    last + 1,
                    BreakKind::TailCut,
                    format!("a signed checkpoint vouches for seq {signed}; the chain ends at seq {last}"),
                );
                return self.report;
            }
            if let Some((hseq, hhash)) = &head {
                if *hseq > last {
                    self.fail(
                        last + 1,
                        BreakKind::TailCut,
                        format!("the chain head is at seq {hseq}; the chain ends at seq {last}"),
                    );
                    return self.report;
                }
                if let Some((_, lh)) = &self.prev
                    && *hseq == last
                    && lh != hhash
                {
                    self.fail(
                        last,
                        BreakKind::Edited,
                        format!("the last event (seq {last}) is not the one the chain head names"),
                    );
                    return self.report;
                }
            }
            if let (Some((seq, at)), Some(max), true) =
                (self.first_unsigned, max_unsigned, self.key.is_some())
                && now - at > max
            {
                self.fail(
                    seq,
                    BreakKind::CheckpointMissing,
                    format!(
                        "events from seq {seq} on (since {}) are signed by no checkpoint; checkpoints are due every {} minutes",
                        at_text(at),
                        (max / 2).num_minutes()
                    ),
                );
            }
        }
        self.report
    }
}

/// Events of a chain with seq > `after`, in order, at most `limit`.
pub async fn events_after(
    conn: &impl ConnectionTrait,
    chain: &str,
    after: i64,
    limit: u64,
) -> Result<Vec<Recorded>> {
    read_events(conn, chain, after, limit).await
}

/// Verification and export read a million events. On SQLite a page is read
/// as ONE row: SQLite renders the page's events as a JSON array of arrays
/// (`json_group_array`), parsed here in one pass; row by row, its driver
/// alone spent ~10 µs per row, ten times what SQLite took to produce them.
/// The summary travels as its stored text inside a JSON string (never
/// re-rendered by SQLite's JSON functions, which would reformat its
/// numbers), and is parsed here as the row-by-row read parsed it.
async fn read_events(
    conn: &impl ConnectionTrait,
    chain: &str,
    after: i64,
    limit: u64,
) -> Result<Vec<Recorded>> {
    let backend = conn.get_database_backend();
    let p = |i: usize| match backend {
        DbBackend::Postgres => format!("${i}"),
        _ => "?".to_owned(),
    };
    let values: Vec<sea_orm::Value> = vec![chain.into(), after.into()];
    let from = format!(
        "FROM audit_events WHERE chain = {} AND seq > {} ORDER BY seq LIMIT {limit}",
        p(1),
        p(2)
    );
    if backend == DbBackend::Postgres {
        // Row by row, decoded by position: PostgreSQL's driver reads rows
        // about as fast as the server produces them, and rendering the page
        // as JSON on the server measured slower than decoding it here.
        let sql = format!(
            "SELECT id, tenant_id, at, actor, actor_role, action, target, summary, source_ip, \
             request_id, chain, seq, prev_hash, hash {from}"
        );
        let rows = conn
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(Recorded {
                id: r.try_get_by_index(0)?,
                tenant_id: r.try_get_by_index(1)?,
                at: r.try_get_by_index(2)?,
                actor: r.try_get_by_index(3)?,
                actor_role: r.try_get_by_index(4)?,
                action: r.try_get_by_index(5)?,
                target: r.try_get_by_index(6)?,
                summary: r.try_get_by_index(7)?,
                source_ip: r.try_get_by_index(8)?,
                request_id: r.try_get_by_index(9)?,
                chain: r.try_get_by_index(10)?,
                seq: r.try_get_by_index(11)?,
                prev_hash: r.try_get_by_index(12)?,
                hash: r.try_get_by_index(13)?,
            });
        }
        return Ok(out);
    }
    let uuid = |c: &str| format!("CASE typeof({c}) WHEN 'blob' THEN lower(hex({c})) ELSE {c} END");
    let sql = format!(
        "SELECT json_group_array(json_array({}, {}, at, actor, actor_role, action, target, \
         summary, source_ip, request_id, chain, seq, prev_hash, hash)) FROM (SELECT * {from})",
        uuid("id"),
        uuid("tenant_id")
    );
    let Some(row) = conn
        .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?
    else {
        return Ok(Vec::new());
    };
    let Some(text) = row.try_get_by_index::<Option<String>>(0)? else {
        return Ok(Vec::new());
    };
    let rows: Vec<PageRow<'_>> = serde_json::from_str(&text)
        .map_err(|e| Error::Audit(format!("a page of events does not parse: {e}")))?;
    let mut out = rows
        .into_iter()
        .map(PageRow::into_recorded)
        .collect::<Result<Vec<_>>>()?;
    if !out.is_sorted_by_key(|e| e.seq) {
        out.sort_by_key(|e| e.seq);
    }
    Ok(out)
}

type Text<'a> = std::borrow::Cow<'a, str>;

/// One event as [`read_events`] receives it.
#[derive(Deserialize)]
struct PageRow<'a>(
    #[serde(borrow)] Text<'a>,
    #[serde(borrow)] Option<Text<'a>>,
    #[serde(borrow)] Text<'a>,
    #[serde(borrow)] Text<'a>,
    #[serde(borrow)] Option<Text<'a>>,
    #[serde(borrow)] Text<'a>,
    #[serde(borrow)] Text<'a>,
    #[serde(borrow)] Text<'a>,
    #[serde(borrow)] Option<Text<'a>>,
    #[serde(borrow)] Option<Text<'a>>,
    #[serde(borrow)] Option<Text<'a>>,
    Option<i64>,
    #[serde(borrow)] Option<Text<'a>>,
    #[serde(borrow)] Option<Text<'a>>,
);

impl PageRow<'_> {
    fn into_recorded(self) -> Result<Recorded> {
        let uuid = |t: &str| {
            uuid::Uuid::parse_str(t)
                .map_err(|e| Error::Audit(format!("an event id {t:?} is not a UUID: {e}")))
        };
        let own = |t: Option<Text<'_>>| t.map(Text::into_owned);
        Ok(Recorded {
            id: uuid(&self.0)?,
            tenant_id: self.1.as_deref().map(uuid).transpose()?,
            at: parse_time(&self.2)
                .ok_or_else(|| Error::Audit(format!("an event time {:?} does not parse", self.2)))?,
            actor: self.3.into_owned(),
            actor_role: own(self.4),
            action: self.5.into_owned(),
            target: self.6.into_owned(),
            summary: serde_json::from_str(&self.7)
                .map_err(|e| Error::Audit(format!("an event summary does not parse: {e}")))?,
            source_ip: own(self.8),
            request_id: own(self.9),
            chain: own(self.10),
            seq: self.11,
            prev_hash: own(self.12),
            hash: own(self.13),
        })
    }
}

/// A stored time as the driver reads it: RFC 3339 (what Vigil writes, and
/// PostgreSQL's JSON form), else the other forms SQLite's driver accepts.
fn parse_time(t: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(t) {
        return Some(at.with_timezone(&Utc));
    }
    const FORMATS: [&str; 12] = [
        "%F %T%.f",
        "%F %R",
        "%F %RZ",
        "%F %R%:z",
        "%F %T%.fZ",
        "%F %T%.f%:z",
        "%FT%R",
        "%FT%RZ",
        "%FT%R%:z",
        "%FT%T%.f",
        "%FT%T%.fZ",
        "%FT%T%.f%:z",
    ];
    FORMATS.iter().find_map(|f| {
        DateTime::parse_from_str(t, f)
            .map(|at| at.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                chrono::NaiveDateTime::parse_from_str(t, f)
                    .ok()
                    .map(|n| n.and_utc())
            })
    })
}

/// Events of the scope from before the chain existed.
pub async fn unchained_count(conn: &impl ConnectionTrait, scope: Scope) -> Result<u64> {
    use sea_orm::PaginatorTrait;
    let q = audit_event::Entity::find().filter(audit_event::Column::Seq.is_null());
    let q = match scope.tenant() {
        Some(t) => q.filter(audit_event::Column::TenantId.eq(t.0)),
        None => q.filter(audit_event::Column::TenantId.is_null()),
    };
    Ok(q.count(conn).await?)
}

/// Page size of a live verification (each page its own short read).
pub const PAGE: u64 = 5_000;

/// Verifies a live chain page by page. `progress(done, total)` is called
/// after each page.
pub async fn verify(
    store: &Store,
    scope: Scope,
    key: Option<PublicKey>,
    clock: &dyn Clock,
    policy: Policy,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<Report> {
    let chain = scope.chain();
    let tx = scope.begin_read(store).await?;
    let head = head(&*tx, &chain).await?;
    let cps = checkpoints(&*tx, &chain).await?;
    let unchained = unchained_count(&*tx, scope).await?;
    tx.commit().await?;
    let total = head.as_ref().map(|(s, _)| *s as u64).unwrap_or(0);
    let mut v = Verifier::new(&chain, key, &cps, Bounds::default());
    for _ in 0..unchained {
        v.unchained();
    }
    // The next page is read while this one is hashed.
    let (tx_pages, mut pages) = tokio::sync::mpsc::channel::<Result<Vec<Recorded>>>(2);
    let reader = {
        let store = store.clone();
        let chain = chain.clone();
        tokio::spawn(async move {
            let mut after = 0;
            loop {
                let page = async {
                    let tx = scope.begin_read(&store).await?;
                    let page = events_after(&*tx, &chain, after, PAGE).await?;
                    tx.commit().await?;
                    Ok(page)
                }
                .await;
                let last = page
                    .as_ref()
                    .ok()
                    .and_then(|p: &Vec<Recorded>| p.last().and_then(|e| e.seq));
                let failed = page.is_err();
                if tx_pages.send(page).await.is_err() || failed {
                    return;
                }
                match last {
                    Some(l) => after = l,
                    None => return,
                }
            }
        })
    };
    let mut done = 0;
    while let Some(page) = pages.recv().await {
        let page = page?;
        if page.is_empty() {
            break;
        }
        done += page.len() as u64;
        let mut more = true;
        for e in &page {
            if !v.push(e) {
                more = false;
                break;
            }
        }
        progress(done, total.max(done));
        if !more {
            break;
        }
    }
    drop(pages);
    reader.abort();
    Ok(v.finish(head, clock.now(), Some(policy.max_unsigned())))
}

/// Checks that a key file's text is a key (for start-up errors).
pub fn parse_key(text: &str) -> Result<SigningKey> {
    SigningKey::from_hex(text).map_err(Error::Audit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_its_definition() {
        let base = Recorded {
            id: uuid::Uuid::now_v7(),
            tenant_id: Some(uuid::Uuid::now_v7()),
            at: chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 3, 12, 0, 0).unwrap()
                + Duration::microseconds(123_456),
            actor: "user:ann".into(),
            actor_role: Some("analyst_edit".into()),
            action: "case.note".into(),
            target: "case:1".into(),
            summary: json!({"z": [1, 2.5, null, true], "a": {"é": "\u{1}\"\\\n", "b": -0.1}, "m": 1e300}),
            source_ip: Some("192.0.2.1".into()),
            request_id: None,
            chain: None,
            seq: None,
            prev_hash: None,
            hash: None,
        };
        let mut other = base.clone();
        other.tenant_id = None;
        other.actor_role = None;
        other.source_ip = None;
        other.request_id = Some("r\u{7f}\u{2028}".into());
        other.actor = "\u{0}😀".into();
        for e in [base, other] {
            assert_eq!(
                event_hash("tenant:x", 7, GENESIS, &e),
                event_hash_by_definition("tenant:x", 7, GENESIS, &e)
            );
        }
    }
}
