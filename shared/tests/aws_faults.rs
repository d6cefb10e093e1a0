//! Fault injection on the AWS backend (in progress).
