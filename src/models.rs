//! The models directory: which model versions exist, loading them (once each), and what the
//! operators see of them. A model's version is its file stem (`vi-en-20261127` for
//! `models/vi-en-20261127.model`), the name `train --out` gives it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::classifier::{Model, ModelError};

/// A model file in the directory.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelEntry {
    /// Its version (file stem).
    pub name: String,
    /// Its path.
    pub path: PathBuf,
}

/// The models directory, with the models loaded so far.
#[derive(Debug)]
pub struct Models {
    dir: PathBuf,
    loaded: Mutex<HashMap<String, Arc<Model>>>,
}

impl Models {
    /// The models in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Models {
            dir: dir.into(),
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The model files there, by name. A directory that cannot be read lists nothing.
    pub fn list(&self) -> Vec<ModelEntry> {
        let mut out: Vec<ModelEntry> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "model"))
            .filter_map(|path| {
                let name = path.file_stem()?.to_str()?.to_owned();
                Some(ModelEntry { name, path })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The names of the models there.
    pub fn names(&self) -> Vec<String> {
        self.list().into_iter().map(|e| e.name).collect()
    }

    /// Keeps an already loaded model under `name` (the one loaded at start-up).
    pub fn insert(&self, name: &str, model: Arc<Model>) {
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), model);
    }

    /// The model `name`, loaded from its file the first time. Blocking (reads a file of a few
    /// MB): call from a blocking context.
    pub fn load(&self, name: &str) -> Result<Arc<Model>, ModelError> {
        if let Some(m) = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(m.clone());
        }
        let model = Arc::new(Model::load(&self.dir.join(format!("{name}.model")))?);
        self.insert(name, model.clone());
        Ok(model)
    }
}
