//! What the binaries beside the Lambda functions run: the local server (the whole API on one
//! machine, with the browser console and the API's description) and the admin command. The
//! Lambda functions themselves need only the `attachments` crate (see `src/bin/`).

pub mod admin;
pub mod api_docs;
pub mod console;
pub mod local;
