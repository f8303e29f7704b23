//! The jobs table (`SHOW JOBS`): long-running work such as replication streams records
//! itself here, in the system virtual cluster's keyspace under `/sql/jobs/<id>`.

use serde::{Deserialize, Serialize};

/// A job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: u64,
    pub job_type: String,
    pub description: String,
    pub status: String,
    pub created: String,
    pub finished: Option<String>,
    pub error: Option<String>,
}

impl JobRecord {
    /// The job as a `SHOW JOBS` row.
    pub fn row(&self) -> Vec<Option<String>> {
        vec![
            Some(self.id.to_string()),
            Some(self.job_type.clone()),
            Some(self.description.clone()),
            Some(self.status.clone()),
            Some(self.created.clone()),
            self.finished.clone(),
            self.error.clone(),
        ]
    }
}
