//! Comment moderation for news portals.
//!
//! A portal's backend calls this service when a reader posts a comment; the service validates
//! it, scores it with a trained classifier and decides whether it is published, held for a
//! moderator or rejected.
//!
//! The submission pipeline ([`pipeline`]) reads in the order a comment goes through it, each
//! stage a module: [`comment`] (validation: domain types that parse) → [`rate_limit`] →
//! [`captcha`] → [`classify`] (the trained [`classifier`]) → [`decide`] → [`store`] (Redis).
//! [`grpc`] is the only module that speaks the wire protocol ([`proto`]); [`server`] wires
//! everything and runs it; [`config`] is the typed configuration; [`cli`] the command line.

pub mod articles;
pub mod auth;
pub mod campaigns;
pub mod captcha;
pub mod classifier;
pub mod classify;
pub mod cli;
pub mod comment;
pub mod config;
pub mod console;
pub mod decide;
pub mod feed;
pub mod grpc;
pub mod hex;
pub mod integrations;
pub mod metrics;
pub mod models;
pub mod pipeline;
pub mod proto;
pub mod rate_limit;
pub mod readers;
pub mod rescan;
pub mod review;
pub mod secret;
pub mod server;
pub mod settings;
pub mod store;
pub mod text;
pub mod traffic;
pub mod webhooks;
