//! The classification stage: scores a validated comment with the active model (and a candidate
//! model in shadow, if ops named one), and explains the scores when the decision needs reasons.
//! Ops switch models at runtime: each comment is scored and explained by one snapshot of the
//! models, never half by the old one and half by the new.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::classifier::{Explanation, Model, Scores};
use crate::comment::NewComment;

/// How many features an explanation names per head.
const REASONS_PER_HEAD: usize = 3;

/// A model with its version.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The model.
    pub model: Arc<Model>,
    /// Its version, reported with every score.
    pub version: Arc<str>,
}

impl Loaded {
    /// `model` under the version it was trained as.
    pub fn new(model: Arc<Model>) -> Self {
        let version = Arc::from(model.info().name.as_str());
        Loaded { model, version }
    }

    fn score(&self, comment: &NewComment) -> Scores {
        self.model
            .score(comment.body.as_str(), Some(comment.author_name.as_str()))
    }
}

/// The scores of one comment.
#[derive(Clone, Debug)]
pub struct Scored {
    /// The active model's scores.
    pub scores: Scores,
    /// The active model's version.
    pub version: Arc<str>,
    /// The candidate's scores and version, when one is in shadow.
    pub shadow: Option<(Scores, Arc<str>)>,
    model: Arc<Model>,
}

impl Scored {
    /// The features that raised each head most, by the model that gave the scores.
    pub fn explain(&self, comment: &NewComment) -> Explanation {
        self.model.explain(
            comment.body.as_str(),
            Some(comment.author_name.as_str()),
            REASONS_PER_HEAD,
        )
    }
}

/// What the pipeline needs from a classifier.
pub trait Classifier: Send + Sync {
    /// Scores a comment.
    fn score(&self, comment: &NewComment) -> Scored;
}

/// The models in force: the active one and an optional candidate.
#[derive(Clone, Debug)]
pub struct InForce {
    /// Decides.
    pub active: Loaded,
    /// Scored beside it, only compared.
    pub shadow: Option<Loaded>,
}

/// The trained models as the pipeline's classifier. It reads the comment body and the author's
/// name (the article title is not a model input; see the model card).
#[derive(Debug)]
pub struct ModelClassifier {
    models: ArcSwap<InForce>,
}

impl ModelClassifier {
    /// A classifier backed by `model`.
    pub fn new(model: Arc<Model>) -> Self {
        ModelClassifier {
            models: ArcSwap::from_pointee(InForce {
                active: Loaded::new(model),
                shadow: None,
            }),
        }
    }

    /// The models in force.
    pub fn in_force(&self) -> Arc<InForce> {
        self.models.load_full()
    }

    /// Switches models; requests already scoring finish with the old ones.
    pub fn switch(&self, models: InForce) {
        self.models.store(Arc::new(models));
    }
}

impl Classifier for ModelClassifier {
    fn score(&self, comment: &NewComment) -> Scored {
        let models = self.models.load();
        Scored {
            scores: models.active.score(comment),
            version: models.active.version.clone(),
            shadow: models
                .shadow
                .as_ref()
                .map(|s| (s.score(comment), s.version.clone())),
            model: models.active.model.clone(),
        }
    }
}
