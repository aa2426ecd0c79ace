//! Fronts: thin adapters that carry frames from a transport to the ingest core.
//!
//! `server` is the HTTP server (`outpost-sink serve`); `lambda` is the AWS Lambda function's
//! front (Function URL and Kinesis), which answers URL requests with the same router.

mod auth;
pub mod lambda;
mod response;
mod routes;
pub mod server;
