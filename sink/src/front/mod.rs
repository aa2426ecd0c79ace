//! Fronts: thin adapters that carry frames from a transport to the ingest core.
//!
//! `server` is the HTTP server (`outpost-sink serve`); `lambda` is the AWS Lambda function's
//! front (Function URL, Kinesis and the health check's events), which answers URL requests with
//! the same router. Both store frames through one call, [`ingest::ingest_frame`].

mod auth;
pub mod ingest;
pub mod lambda;
mod response;
mod routes;
pub mod server;
