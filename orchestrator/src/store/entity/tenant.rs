use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "tenants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub status: String,
    pub created_at: DateTimeUtc,
    /// Session idle timeout in seconds (None: the default).
    pub session_idle_secs: Option<i32>,
    /// Session absolute lifetime in seconds (None: the default).
    pub session_absolute_secs: Option<i32>,
    /// Set while the tenant is scheduled for deletion: when it is due.
    pub deletion_due_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
