//! The models directory: which model versions exist, loading them (once each), and what the
//! operators see of them. A model's version is its file stem (`vi-en-20261127` for
//! `models/vi-en-20261127.model`), the name `train --out` gives it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::classifier::{Model, ModelError};

/// A model file in the directory.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelEntry {
    /// Its version (file stem).
    pub name: String,
    /// Its path.
    pub path: PathBuf,
}

/// Name → (the file's modification time when read, the model).
type Cache = HashMap<String, (Option<SystemTime>, Arc<Model>)>;

/// The models directory, with the models in use kept loaded.
#[derive(Debug)]
pub struct Models {
    dir: PathBuf,
    /// Name → (the file's modification time when read, the model). A file replaced under the
    /// same name is read again.
    loaded: Mutex<Cache>,
}

impl Models {
    /// The models in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Models {
            dir: dir.into(),
            loaded: Mutex::new(HashMap::new()),
        }
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

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.model"))
    }

    fn modified(&self, name: &str) -> Option<SystemTime> {
        std::fs::metadata(self.path(name))
            .and_then(|m| m.modified())
            .ok()
    }

    /// Keeps an already loaded model under `name` (the one loaded at start-up, perhaps from
    /// elsewhere than the directory).
    pub fn insert(&self, name: &str, model: Arc<Model>) {
        let modified = self.modified(name);
        self.cache().insert(name.to_owned(), (modified, model));
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached model `name`, if its file has not changed since it was read (or it has no
    /// file in the directory).
    fn cached(&self, name: &str) -> Option<Arc<Model>> {
        let modified = self.modified(name);
        let cache = self.cache();
        let (read_at, model) = cache.get(name)?;
        (modified.is_none() || modified == *read_at).then(|| model.clone())
    }

    /// The model `name`, read from its file the first time (and again when the file changes),
    /// then kept. Blocking (reads a file of a few MB): call from a blocking context.
    pub fn load(&self, name: &str) -> Result<Arc<Model>, ModelError> {
        if let Some(model) = self.cached(name) {
            return Ok(model);
        }
        let modified = self.modified(name);
        let model = Arc::new(Model::load(&self.path(name))?);
        self.cache()
            .insert(name.to_owned(), (modified, model.clone()));
        Ok(model)
    }

    /// The model `name` for a look at its card: the kept one if any, else read without being
    /// kept (listing the directory does not load every model for good).
    pub fn peek(&self, name: &str) -> Result<Arc<Model>, ModelError> {
        match self.cached(name) {
            Some(model) => Ok(model),
            None => Model::load(&self.path(name)).map(Arc::new),
        }
    }
}
