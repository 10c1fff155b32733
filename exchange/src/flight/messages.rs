//! Wire messages of node RPC that the exchange owns: the `do_get` [`ReadTicket`], and the protocol
//! version every node RPC request carries ([`NODE_RPC_VERSION`], checked by [`decode_request`]).
//!
//! Messages are protobuf, declared in Rust with `prost` derives (no `.proto` file, no code generation).
//! Every request message starts with the same two fields, `uint32 version = 1` and
//! `string sender = 2` ([`RequestHeader`]): a node reads them first (skipping the other fields), so a
//! well-formed request of another version is refused with a clear error even when its other fields
//! changed.

use prost::Message;

/// Version of the node RPC messages this build sends and accepts. Raise it whenever a message of node
/// RPC changes in a way an older node would misread; nodes of different versions refuse each other's
/// requests ([`RequestError::Version`]).
pub const NODE_RPC_VERSION: u32 = 2;

/// SQLSTATE of a request refused for its node RPC version (PostgreSQL answers a client speaking a
/// protocol version it does not support with `feature_not_supported` too).
pub const VERSION_MISMATCH_SQLSTATE: &str = "0A000";

/// The fields every node RPC request starts with: what a node reads before anything else.
#[derive(Clone, PartialEq, Message)]
pub struct RequestHeader {
    /// The sender's [`NODE_RPC_VERSION`].
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// The sending node: its id (`coordinator`, `worker-1`) or, where the id is not at hand, its RPC
    /// address. Only named in errors.
    #[prost(string, tag = "2")]
    pub sender: String,
}

/// The `do_get` ticket of one output partition of one task (a request: it starts with the
/// [`RequestHeader`] fields).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct ReadTicket {
    /// [`NODE_RPC_VERSION`] of the reading node.
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// The reading node (its RPC address).
    #[prost(string, tag = "2")]
    pub sender: String,
    /// Query id.
    #[prost(string, tag = "3")]
    pub query: String,
    /// Stage of the producing task.
    #[prost(uint64, tag = "4")]
    pub stage: u64,
    /// The producing task, within its stage.
    #[prost(uint64, tag = "5")]
    pub task: u64,
    /// The output partition to read.
    #[prost(uint64, tag = "6")]
    pub partition: u64,
}

/// Why a node refused a request it received.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The request carries another node RPC version than this node's.
    #[error(
        "node RPC version {received} from {sender} is not supported by {receiver} (version {NODE_RPC_VERSION}): run the same Tributary release on every node"
    )]
    Version {
        /// The request's version.
        received: u32,
        /// The sending node as it named itself (`an unnamed node` when it did not).
        sender: String,
        /// This node's id.
        receiver: String,
    },
    /// The request is not a protobuf message of the expected shape.
    #[error(
        "bad {request} request (not a node RPC message of version {NODE_RPC_VERSION}): {source}"
    )]
    Malformed {
        /// What was requested: `run_tasks`, `release`, `announce`, `exchange read`.
        request: &'static str,
        /// The protobuf decoding error.
        source: prost::DecodeError,
    },
}

impl RequestError {
    /// The gRPC status answering the request: `FAILED_PRECONDITION` carrying
    /// [`VERSION_MISMATCH_SQLSTATE`] for a version mismatch (so the sender surfaces it as a
    /// [`super::RemoteError`] with that message, not as a lost node), `INVALID_ARGUMENT` otherwise.
    pub fn into_status(self) -> tonic::Status {
        match &self {
            Self::Version { .. } => super::status_with_sqlstate(
                tonic::Code::FailedPrecondition,
                VERSION_MISMATCH_SQLSTATE,
                self.to_string(),
            ),
            Self::Malformed { .. } => tonic::Status::invalid_argument(self.to_string()),
        }
    }
}

impl From<RequestError> for tonic::Status {
    fn from(e: RequestError) -> Self {
        e.into_status()
    }
}

/// Decodes the `request` body `body` received by node `receiver`: first its [`RequestHeader`], refusing
/// another [`NODE_RPC_VERSION`], then the whole message.
///
/// Errors: [`RequestError::Version`] on another version, [`RequestError::Malformed`] when the body is
/// not a protobuf message of type `M`.
pub fn decode_request<M: Message + Default>(
    request: &'static str,
    body: bytes::Bytes,
    receiver: &str,
) -> Result<M, RequestError> {
    let malformed = |source| RequestError::Malformed { request, source };
    let header = RequestHeader::decode(body.clone()).map_err(malformed)?;
    if header.version != NODE_RPC_VERSION {
        let sender = if header.sender.is_empty() {
            "an unnamed node".to_string()
        } else {
            header.sender
        };
        return Err(RequestError::Version {
            received: header.version,
            sender,
            receiver: receiver.to_string(),
        });
    }
    M::decode(body).map_err(malformed)
}

impl ReadTicket {
    /// The ticket of `partition` of `output`, read by the node at `reader` (its RPC address).
    pub fn new(output: &crate::TaskOutputId, partition: usize, reader: &str) -> Self {
        Self {
            version: NODE_RPC_VERSION,
            sender: reader.to_string(),
            query: output.query.to_string(),
            stage: output.stage as u64,
            task: output.task as u64,
            partition: partition as u64,
        }
    }

    /// The Flight ticket carrying it.
    pub fn to_ticket(&self) -> arrow_flight::Ticket {
        arrow_flight::Ticket::new(self.encode_to_vec())
    }

    /// Parses a ticket received by node `receiver` (errors as [`decode_request`]).
    pub fn from_ticket(
        ticket: &arrow_flight::Ticket,
        receiver: &str,
    ) -> Result<Self, RequestError> {
        decode_request("exchange read", ticket.ticket.clone(), receiver)
    }

    /// The task output it reads.
    pub fn output(&self) -> crate::TaskOutputId {
        crate::TaskOutputId {
            query: self.query.as_str().into(),
            stage: self.stage as usize,
            task: self.task as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_round_trip_and_refuse_another_version() {
        let output = crate::TaskOutputId {
            query: "q7".into(),
            stage: 3,
            task: 2,
        };
        let ticket = ReadTicket::new(&output, 5, "127.0.0.1:7501");
        let back = ReadTicket::from_ticket(&ticket.to_ticket(), "worker-1").unwrap();
        assert_eq!(back, ticket);
        assert_eq!(back.output(), output);
        assert_eq!(back.partition, 5);

        let other = ReadTicket {
            version: NODE_RPC_VERSION + 1,
            ..ticket
        };
        let err = ReadTicket::from_ticket(&other.to_ticket(), "worker-1").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "node RPC version {} from 127.0.0.1:7501 is not supported by worker-1 (version \
                 {NODE_RPC_VERSION}): run the same Tributary release on every node",
                NODE_RPC_VERSION + 1
            )
        );
        let status = err.into_status();
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        let remote = super::super::status_to_error(&status, "worker-1", "127.0.0.1:7502");
        assert_eq!(remote.sqlstate, VERSION_MISMATCH_SQLSTATE);
        assert_eq!(remote.lost_node, None);
        assert!(remote.message.starts_with("node RPC version"), "{remote}");
    }

    #[test]
    fn a_json_ticket_of_an_older_release_is_refused() {
        let old = arrow_flight::Ticket::new(
            br#"{"query":"q1","stage":1,"task":0,"partition":0}"#.to_vec(),
        );
        let err = ReadTicket::from_ticket(&old, "worker-1").unwrap_err();
        assert!(
            matches!(
                err,
                RequestError::Malformed { .. } | RequestError::Version { .. }
            ),
            "{err}"
        );
        assert!(matches!(
            err.into_status().code(),
            tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition
        ));
    }
}
