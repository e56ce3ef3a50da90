//! PostgreSQL-only statements: the application role, its grants, and RLS.
//! Each migration that adds tables calls these for its own tables.

use sea_orm_migration::prelude::*;

use crate::APP_ROLE;

/// Creates the application role if the cluster does not have it yet (roles
/// are cluster-wide) and lets the migrating (owner) role switch to it.
pub async fn ensure_app_role(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    db.execute_unprepared(&format!(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN \
             CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; \
           END IF; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; \
         END $$;"
    ))
    .await?;
    // The owner connects and switches to the app role at connection start.
    db.execute_unprepared(&format!(
        "DO $$ BEGIN \
           IF NOT pg_has_role(current_user, '{APP_ROLE}', 'MEMBER') THEN \
             EXECUTE format('GRANT {APP_ROLE} TO %I', current_user); \
           END IF; \
         END $$;"
    ))
    .await?;
    db.execute_unprepared(&format!("GRANT USAGE ON SCHEMA public TO {APP_ROLE}"))
        .await?;
    db.execute_unprepared(&format!("GRANT SELECT ON seaql_migrations TO {APP_ROLE}"))
        .await?;
    Ok(())
}

/// Grants the app role the given privileges on a table.
pub async fn grant(manager: &SchemaManager<'_>, table: &str, privileges: &str) -> Result<(), DbErr> {
    manager
        .get_connection()
        .execute_unprepared(&format!("GRANT {privileges} ON {table} TO {APP_ROLE}"))
        .await
        .map(|_| ())
}

/// The tenant predicate: NULL (so nothing matches) when the setting is unset
/// or empty.
pub const TENANT_PREDICATE: &str = "tenant_id = NULLIF(current_setting('vigil.tenant_id', true), '')::uuid";

/// ENABLE + FORCE row level security on a tenant table with the isolation
/// policy for reads and writes.
pub async fn tenant_rls(manager: &SchemaManager<'_>, table: &str) -> Result<(), DbErr> {
    let db = manager.get_connection();
    db.execute_unprepared(&format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"))
        .await?;
    db.execute_unprepared(&format!("ALTER TABLE {table} FORCE ROW LEVEL SECURITY"))
        .await?;
    db.execute_unprepared(&format!(
        "CREATE POLICY tenant_isolation ON {table} USING ({TENANT_PREDICATE}) WITH CHECK ({TENANT_PREDICATE})"
    ))
    .await?;
    Ok(())
}

/// `{name}(uuid) RETURNS uuid`: the tenant of a row of `table` by its id,
/// SECURITY DEFINER (RLS hides the row until the tenant is known), callable
/// by the app role only. For the few lookups made before a tenant is known
/// (a webhook delivery, an SSO callback); it returns the tenant id only.
pub async fn tenant_lookup_function(
    manager: &SchemaManager<'_>,
    name: &str,
    table: &str,
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    db.execute_unprepared(&format!(
        "CREATE FUNCTION {name}(row_id uuid) RETURNS uuid \
         LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$ \
           SELECT tenant_id FROM {table} WHERE id = row_id $$"
    ))
    .await?;
    db.execute_unprepared(&format!("REVOKE ALL ON FUNCTION {name}(uuid) FROM PUBLIC"))
        .await?;
    db.execute_unprepared(&format!("GRANT EXECUTE ON FUNCTION {name}(uuid) TO {APP_ROLE}"))
        .await?;
    Ok(())
}
