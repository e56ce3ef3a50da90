use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub email: String,
    pub display_name: Option<String>,
    pub password_hash: Option<String>,
    pub is_platform_admin: bool,
    pub created_at: DateTimeUtc,
    pub disabled_at: Option<DateTimeUtc>,
    pub failed_logins: i32,
    pub locked_until: Option<DateTimeUtc>,
    pub totp_secret: Option<String>,
    pub totp_enabled_at: Option<DateTimeUtc>,
    pub totp_last_step: Option<i64>,
    /// Second-factor attempts since the last success (each counted before it is checked).
    pub mfa_failures: i32,
    /// Too many wrong second factors: no attempt, and no password login, until then.
    pub mfa_locked_until: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
