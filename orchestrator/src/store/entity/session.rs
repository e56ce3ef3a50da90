use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub token_hash: String,
    pub user_id: Uuid,
    pub active_tenant_id: Option<Uuid>,
    pub mfa_verified_at: Option<DateTimeUtc>,
    pub csrf_token: String,
    pub created_at: DateTimeUtc,
    pub last_seen_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// Set for an SSO session: the only tenant it may act in.
    pub bound_tenant_id: Option<Uuid>,
    /// The idle timeout this session runs under (None: the default).
    pub idle_secs: Option<i32>,
    /// Wrong second factors presented in this session (it ends after too many).
    pub mfa_failures: i32,
    /// The SSO provider that opened this session.
    pub sso_provider_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
