//! `validate-config`: what `run` would need, checked without writing anything.

use std::process::ExitCode;

use anyhow::Result;
use fhir_ingest::{
    app::daemon::chain,
    bulk::{BulkClient, BulkConfig},
    config::Config,
    input,
    schema::Registry,
    source::{SourceKind, state::SourceState},
    warehouse::{Warehouse, WarehouseError},
};

use super::Shell;

impl Shell {
    /// Checks what `run` would need, writing nothing.
    pub(super) fn validate_config(&self, config: &Config) -> Result<ExitCode> {
        let report = &self.report;
        report.line(format!("config {}: valid", config.path.display()));
        let registry = Registry::embedded()?;
        for v in &config.views {
            report.line(format!(
                "view {} over {} ({}): {} columns -> views/{}",
                v.view.name(),
                v.view.resource(),
                v.file.display(),
                v.view.arrow_schema().fields().len(),
                v.view.name()
            ));
        }
        // Writes nothing: a local warehouse that does not exist yet is reported, not made.
        let warehouse = match self.open(&config.warehouse, true) {
            Ok(warehouse) => {
                report.line(format!("warehouse {}: reachable", warehouse.root()));
                Some(warehouse)
            }
            Err(e) if matches!(e.downcast_ref(), Some(WarehouseError::Missing { .. })) => {
                report.line(format!(
                    "warehouse {}: does not exist yet; the first run creates it",
                    config.warehouse.location
                ));
                None
            }
            Err(e) => return Err(e),
        };
        let mut failed = false;
        for source in &config.sources {
            let schedule = source.schedule.as_ref().map_or("run only".into(), |s| {
                format!("schedule {:?}", s.expression())
            });
            let result = match &source.kind {
                SourceKind::Files { paths } => input::discover(paths, &registry)
                    .map(|files| {
                        format!(
                            "source {} ({schedule}): {} NDJSON files to ingest",
                            source.name,
                            files.len()
                        )
                    })
                    .map_err(anyhow::Error::from),
                SourceKind::Bulk { client } => {
                    self.validate_bulk(&source.name, client, warehouse.as_ref(), &schedule)
                }
            };
            match result {
                Ok(line) => report.line(line),
                Err(e) => {
                    failed = true;
                    report.problem(format!("source {}: {}", source.name, chain(e.as_ref())));
                }
            }
        }
        Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }

    /// Reaches a bulk source's server and says what the next run would ask for.
    fn validate_bulk(
        &self,
        name: &str,
        client: &BulkConfig,
        warehouse: Option<&Warehouse>,
        schedule: &str,
    ) -> Result<String> {
        let bulk = BulkClient::new(client.clone())?;
        let (fhir_version, software) = self.runtime.block_on(bulk.metadata())?;
        let (checkpoint, in_flight) = match warehouse {
            Some(warehouse) => {
                let state = SourceState::new(warehouse.store(), name);
                let (_, checkpoint) = self.runtime.block_on(state.checkpoint())?;
                (checkpoint, self.runtime.block_on(state.in_flight())?)
            }
            None => (None, None),
        };
        let since = checkpoint
            .map(|c| format!("changes since {}", c.transaction_time))
            .or_else(|| {
                client
                    .since
                    .clone()
                    .map(|s| format!("changes since {s} (configured start)"))
            })
            .unwrap_or_else(|| "a full export".into());
        let types = if client.types.is_empty() {
            "all types".to_owned()
        } else {
            client.types.join(",")
        };
        Ok(format!(
            "source {name} ({schedule}): {} answers (FHIR {fhir_version}, {software}); next run: {}{since} of {types} from {}",
            fhir_ingest::auth::redact_url(&client.base_url),
            if in_flight.is_some() {
                "resume the export in flight, else "
            } else {
                ""
            },
            bulk.kickoff_url()
        ))
    }
}
