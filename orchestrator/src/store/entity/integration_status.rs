use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "integration_status")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub integration_id: Uuid,
    pub tenant_id: Uuid,
    pub cursor: Option<String>,
    pub next_poll_at: Option<DateTimeUtc>,
    pub last_ok_at: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTimeUtc>,
    pub failures: i32,
    pub pulled: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
