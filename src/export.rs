//! `vigil admin export-tenant`: every row a tenant owns, as one tar
//! archive — a JSON Lines file per tenant table and `manifest.json` with
//! each file's row count and SHA-256 (portability). Tables are read page by
//! page, each spooled to a temporary file (a tar entry states its size
//! first), so memory stays flat; a progress bar shows on a terminal.

use std::io::{BufWriter, Seek, Write};
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};
use vigil_orchestrator::audit::{self, Actor, Event};
use vigil_orchestrator::store::dump;
use vigil_orchestrator::{Clock, Store, TenantId};

use crate::Error;

const PAGE: u64 = 5_000;

fn io(e: std::io::Error) -> Error {
    Error::Io(e.to_string())
}

/// Writes the archive to `out` (refused if it exists); returns the manifest.
pub async fn export_tenant(
    store: &Store,
    clock: &dyn Clock,
    actor: &Actor,
    tenant: TenantId,
    out: &Path,
) -> Result<serde_json::Value, Error> {
    // The tenant exists (and the store answers) before anything is written.
    vigil_orchestrator::identity::get_tenant(store.conn(), tenant).await?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(|e| Error::Io(format!("cannot create {}: {e}", out.display())))?;
    let mut archive = tar::Builder::new(BufWriter::new(file));
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(dump::tables().len() as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    let mut tables = Vec::new();
    for table in dump::tables() {
        bar.set_message((*table).to_owned());
        let mut spool = tempfile::tempfile().map_err(io)?;
        let (mut rows, mut hash) = (0u64, Sha256::new());
        {
            let mut w = BufWriter::new(&mut spool);
            loop {
                let tx = store.begin_tenant_read(tenant).await?;
                let page = dump::rows(&tx, table, rows, PAGE).await?;
                tx.commit().await?;
                for line in &page {
                    w.write_all(line.as_bytes()).map_err(io)?;
                    w.write_all(b"\n").map_err(io)?;
                    hash.update(line.as_bytes());
                    hash.update(b"\n");
                }
                rows += page.len() as u64;
                if (page.len() as u64) < PAGE {
                    break;
                }
            }
            w.flush().map_err(io)?;
        }
        let size = spool.stream_position().map_err(io)?;
        spool.rewind().map_err(io)?;
        let name = format!("{table}.jsonl");
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o600);
        header.set_mtime(clock.now().timestamp().max(0) as u64);
        header.set_cksum();
        archive.append_data(&mut header, &name, &mut spool).map_err(io)?;
        tables.push(
            json!({"table": table, "file": name, "rows": rows, "sha256": hex::encode(hash.finalize())}),
        );
        bar.inc(1);
    }
    bar.finish_and_clear();
    let manifest = json!({
        "format": "vigil-tenant-export",
        "version": 1,
        "tenant_id": tenant.0,
        "exported_at": clock.now(),
        "tables": tables,
    });
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Io(e.to_string()))?;
    let mut header = tar::Header::new_gnu();
    header.set_size(text.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(clock.now().timestamp().max(0) as u64);
    header.set_cksum();
    archive
        .append_data(&mut header, "manifest.json", text.as_slice())
        .map_err(io)?;
    archive.into_inner().and_then(|mut w| w.flush()).map_err(io)?;
    let tx = store.begin_tenant(tenant).await?;
    let rows: u64 = manifest["tables"]
        .as_array()
        .map(|t| t.iter().filter_map(|x| x["rows"].as_u64()).sum())
        .unwrap_or(0);
    audit::record(
        &tx,
        clock,
        actor,
        Event {
            action: "tenant.export",
            target: format!("tenant:{tenant}"),
            summary: json!({"rows": rows, "tables": dump::tables().len()}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(manifest)
}
