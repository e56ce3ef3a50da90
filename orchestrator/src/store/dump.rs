//! Every row a tenant owns, table by table, as JSON text: what tenant
//! export (portability) writes. Tables are the schema's own list
//! (`migrations::TENANT_TABLES`); a name outside it is refused, so no text
//! from outside reaches the SQL.

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::{Error, Result, TenantTx};

/// The tables a tenant owns, in the schema's order.
pub fn tables() -> &'static [&'static str] {
    vigil_migrations::TENANT_TABLES
}

/// Up to `limit` of the tenant's rows of `table` after the first `offset`,
/// each a JSON object (column → value; SQLite blobs as hex).
pub async fn rows(tx: &TenantTx, table: &str, offset: u64, limit: u64) -> Result<Vec<String>> {
    if !tables().contains(&table) {
        return Err(Error::Invalid(format!("{table:?} is not a tenant table")));
    }
    let backend = tx.get_database_backend();
    let t = tx.tenant().0;
    let stmt = match backend {
        DbBackend::Postgres => Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT row_to_json(x)::text AS j FROM {table} x WHERE tenant_id = $1 ORDER BY 1 LIMIT {limit} OFFSET {offset}"
            ),
            [t.into()],
        ),
        _ => {
            let cols = tx
                .query_all_raw(Statement::from_string(
                    backend,
                    format!("PRAGMA table_info('{table}')"),
                ))
                .await?
                .into_iter()
                .filter_map(|r| r.try_get::<String>("", "name").ok())
                .collect::<Vec<_>>();
            let fields = cols
                .iter()
                .map(|c| {
                    format!("'{c}', CASE typeof(\"{c}\") WHEN 'blob' THEN hex(\"{c}\") ELSE \"{c}\" END")
                })
                .collect::<Vec<_>>()
                .join(", ");
            Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT json_object({fields}) AS j FROM {table} WHERE tenant_id = ? ORDER BY 1 LIMIT {limit} OFFSET {offset}"
                ),
                [t.into()],
            )
        }
    };
    let rows = tx.query_all_raw(stmt).await?;
    rows.into_iter()
        .map(|r| r.try_get::<String>("", "j").map_err(Error::from))
        .collect()
}
