//! The classification stage: scores a validated comment with the trained model, and explains
//! the scores when the decision needs reasons.

use std::sync::Arc;

use crate::classifier::{Explanation, Model, Scores};
use crate::comment::NewComment;

/// What the pipeline needs from a classifier.
pub trait Classifier: Send + Sync {
    /// Scores a comment; returns the scores and the version of the model that gave them.
    fn score(&self, comment: &NewComment) -> (Scores, Arc<str>);

    /// Explains a comment's scores: the features that raised each head most.
    fn explain(&self, comment: &NewComment) -> Explanation;
}

/// How many features an explanation names per head.
const REASONS_PER_HEAD: usize = 3;

/// The trained model as the pipeline's classifier. It reads the comment body and the author's
/// name (the article title is not a model input; see the model card).
#[derive(Clone, Debug)]
pub struct ModelClassifier {
    model: Arc<Model>,
    version: Arc<str>,
}

impl ModelClassifier {
    /// A classifier backed by `model`.
    pub fn new(model: Arc<Model>) -> Self {
        let version = Arc::from(model.info().name.as_str());
        ModelClassifier { model, version }
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }
}

impl Classifier for ModelClassifier {
    fn score(&self, comment: &NewComment) -> (Scores, Arc<str>) {
        let scores = self
            .model
            .score(comment.body.as_str(), Some(comment.author_name.as_str()));
        (scores, self.version.clone())
    }

    fn explain(&self, comment: &NewComment) -> Explanation {
        self.model.explain(
            comment.body.as_str(),
            Some(comment.author_name.as_str()),
            REASONS_PER_HEAD,
        )
    }
}
