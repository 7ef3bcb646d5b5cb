//! Comment moderation for news portals.
//!
//! A portal's backend calls this service when a reader posts a comment; the service validates
//! it, scores it with a trained classifier and decides whether it is published, held for a
//! moderator or rejected.
//!
//! - [`text`]: Unicode clean-up shared by everything that reads a reader's text.
//! - [`classifier`]: the trained spam/abuse classifier, its training and evaluation.
//! - [`cli`]: the command line (`train`, `evaluate`, `classify`, ...).

pub mod classifier;
pub mod cli;
pub mod text;
