//! Fronts: thin adapters that carry frames from a transport to the ingest core.
//!
//! `server` is the local HTTP server; a Lambda front will sit beside it.

mod auth;
mod response;
mod routes;
pub mod server;
