//! The labeled corpus format (JSON Lines, one comment per line; see the shared data README):
//! reading it for training and evaluation, and the record type the feedback export writes.

use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::model::HeadKind;

/// One labeled comment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The comment as published.
    pub text: String,
    /// Spam label; `None` where the source says nothing about spam.
    #[serde(default)]
    pub spam: Option<bool>,
    /// Toxicity label; `None` where the source says nothing about abuse.
    #[serde(default)]
    pub toxic: Option<bool>,
    /// Language code (`vi`, `en`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// Dataset name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Title of the article the comment was posted under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Display name of the commenter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

impl Record {
    /// The label for `head`.
    pub fn label(&self, head: HeadKind) -> Option<bool> {
        match head {
            HeadKind::Spam => self.spam,
            HeadKind::Toxic => self.toxic,
        }
    }

    /// The source name, or `unknown`.
    pub fn source_name(&self) -> &str {
        self.source.as_deref().unwrap_or("unknown")
    }
}

/// Reads every record of a corpus file; a malformed line is an error naming the line.
pub fn read(path: &Path) -> Result<Vec<Record>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut records = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a corpus record", path.display(), n + 1))?;
        records.push(record);
    }
    if records.is_empty() {
        bail!("{} holds no records", path.display());
    }
    Ok(records)
}
