//! Body codecs: how request bodies become the JSON objects handlers work with, and how the
//! JSON handlers produce becomes the encoding the client negotiated.
//!
//! Handlers see `serde_json::Value` objects, never content types: the pipeline decodes a
//! request body before dispatch and encodes the response after it ([`protobuf`] here;
//! JSON is the server's own form).

pub mod protobuf;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod table;
