//! Alerts in, cases out: signed webhook ingest and its group-commit queue,
//! observables (with each entity's role in its alert), entity prevalence
//! (the noise the correlator finds itself), correlation into cases on event
//! time, indicator lists, the case timeline, evidence collected through
//! integrations' read scopes (`evidence`),
//! briefs and recommendations, the investigation workflow the engine runs
//! for every case (`investigation`), and the two corpora that measure
//! correlation.
//!
//! May use: the shared ground, `engine` (cases), `connect` (an ingest's
//! integration, the read-only vendor calls of evidence) and `secrets` (its
//! signing secret).

pub mod assess;
pub mod corpus;
pub mod correlate;
pub mod drafts;
pub mod estate;
pub mod evidence;
pub mod ingest;
pub mod ingest_queue;
pub mod investigation;
pub mod iocs;
pub mod observables;
pub mod prevalence;
pub mod purge;
pub mod retention;
pub mod timeline;
