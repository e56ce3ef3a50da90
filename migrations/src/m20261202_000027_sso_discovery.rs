//! Sign-in discovery: the login page finds the identity providers that own
//! an e-mail address's domain before any tenant is known. PostgreSQL: a
//! SECURITY DEFINER function (RLS hides the providers from the serving
//! role until a tenant is bound) that returns only each enabled provider's
//! id and display name.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE FUNCTION vigil_sso_providers_for_domain(domain text) RETURNS TABLE(id uuid, name text) \
             LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$ \
               SELECT p.id, p.name FROM sso_providers p \
               WHERE p.disabled_at IS NULL AND p.domains IS NOT NULL \
                 AND (p.domains::jsonb) ? lower(domain) \
               ORDER BY p.name, p.id LIMIT 20 $$",
        )
        .await?;
        db.execute_unprepared("REVOKE ALL ON FUNCTION vigil_sso_providers_for_domain(text) FROM PUBLIC")
            .await?;
        db.execute_unprepared(&format!(
            "GRANT EXECUTE ON FUNCTION vigil_sso_providers_for_domain(text) TO {}",
            crate::APP_ROLE
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared("DROP FUNCTION IF EXISTS vigil_sso_providers_for_domain(text)")
            .await?;
        Ok(())
    }
}
