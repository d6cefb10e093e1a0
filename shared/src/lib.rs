//! The attachments service: one domain, storage ports with embedded and AWS adapters, and the HTTP
//! dialects (native and compatible APIs) that the local server and the Lambda binaries both serve.
//!
//! Where to start reading: [`http::routes`] is the route table (every endpoint of every API),
//! [`service`] holds the use cases, [`store`] the storage ports and adapters, [`domain`] the types.

pub mod access;
pub mod admin;
pub mod api_docs;
pub mod blocking;
pub mod config;
pub mod console;
pub mod dead_letters;
pub mod domain;
pub mod fixtures;
pub mod http;
pub mod lambda;
pub mod local;
pub mod service;
pub mod setup;
pub mod signing;
pub mod storage_events;
pub mod store;
pub mod telemetry;

pub use config::Config;
pub use service::App;
