//! `verify`: the repository check, plus (for PostgreSQL sources) test restores.

use crate::error::Result;
use lifeboat_repo::{check, CheckOptions, CheckReport, Repository};
use std::sync::Arc;

/// Check structure, and with `read_data_percent` the data too.
pub async fn verify_repository(
    repo: &Arc<Repository>,
    read_data_percent: Option<f64>,
) -> Result<CheckReport> {
    Ok(check(repo, CheckOptions { read_data_percent }).await?)
}
