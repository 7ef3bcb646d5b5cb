//! HTTP APIs other systems already speak, served on the console's listener (`[http] listen`):
//! Akismet's ([`akismet`]) for CMSs with an Akismet plugin, and Coral's external moderation
//! phase ([`coral`]). Each maps its requests onto the same pipeline and review queue as the gRPC
//! API.

pub mod akismet;
pub mod coral;

use std::sync::Arc;

use axum::Router;
use axum::routing::post;

use crate::console::Console;

/// Their routes.
pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/1.1/verify-key", post(akismet::verify_key))
        .route("/1.1/comment-check", post(akismet::comment_check))
        .route("/1.1/submit-spam", post(akismet::submit_spam))
        .route("/1.1/submit-ham", post(akismet::submit_ham))
        .route("/coral/moderate", post(coral::moderate))
}
