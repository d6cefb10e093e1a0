//! The attachments service: one domain, storage ports with embedded and AWS adapters, and the HTTP
//! dialects (native and compatible APIs) that the Lambda binaries and the local server (in the
//! `functions` package) both serve.
//!
//! Where to start reading: [`http::routes`] is the route table (every endpoint of every API),
//! [`service`] holds the use cases, [`store`] the storage ports and adapters, [`domain`] the types.

pub mod access;
pub mod blocking;
pub mod config;
pub mod domain;
pub mod fixtures;
pub mod http;
pub mod lambda;
pub mod service;
pub mod setup;
pub mod signing;
pub mod storage_events;
pub mod store;
pub mod telemetry;

pub use config::Config;
pub use service::App;
