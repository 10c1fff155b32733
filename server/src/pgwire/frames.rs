//! Frontend messages checked whole before `pgwire` decodes them, and the client's going noticed while a
//! query runs.
//!
//! `pgwire` 0.41 (and 0.42.1, the newest release) decodes a message body from the whole read buffer
//! with unchecked reads (`get_u16`, `get_i32`, `split_to`): a Parse or Bind whose counts or lengths lie
//! panics in `messages::extendedquery::{Parse, Bind}::decode_body`, a SASLInitialResponse whose data
//! length lies panics in `startup::SASLInitialResponse::decode_body`, and a string without its
//! terminator is read on into the next message. Until that is fixed upstream, every frame a client
//! sends is split off here by its length and parsed field by field exactly as `pgwire` will parse it;
//! only frames that parse to their last byte are handed on. Anything else ends the connection with
//! `08P01` (PostgreSQL's `protocol_violation`, with its wording: `invalid message format`, `invalid
//! frontend message type 90`, `invalid length of startup packet`).
//!
//! The socket is read by a task of its own ([`guard`]), so a client that closes its connection is
//! noticed at once, even while its query computes and nothing is written (PostgreSQL's
//! `client_connection_check_interval`); [`ClientGone`] then fires and the session cancels the query.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Startup packets are at most this long (PostgreSQL's `MAX_STARTUP_PACKET_LENGTH`), in bytes.
const MAX_STARTUP_LENGTH: usize = 10_000;
/// Messages that carry no data beyond a name or two are at most this long (PostgreSQL's
/// `PQ_SMALL_MESSAGE_LIMIT`), in bytes, length field included.
const MAX_SMALL_LENGTH: usize = 10_000;
/// Any message is at most this long (PostgreSQL's `PQ_LARGE_MESSAGE_LIMIT`, 1 GiB - 1), in bytes.
const MAX_LARGE_LENGTH: usize = 0x3fff_ffff;
/// Startup-packet codes that are not a StartupMessage (PostgreSQL's `pqcomm.h`).
const CANCEL_REQUEST_CODE: i32 = 80_877_102;
const SSL_REQUEST_CODE: i32 = 80_877_103;
const GSSENC_REQUEST_CODE: i32 = 80_877_104;
/// A CancelRequest's length: code, pid and a secret key of 4 (protocol 3.0) to 256 bytes (3.2).
const CANCEL_LENGTHS: std::ops::RangeInclusive<usize> = 16..=268;
/// Frames read ahead of the session, at most.
const READ_AHEAD_FRAMES: usize = 16;

/// A frontend message that cannot be what it claims; the connection ends with `08P01` and this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A startup packet shorter than its code or longer than 10,000 bytes.
    #[error("invalid length of startup packet")]
    StartupLength,
    /// An SSLRequest or GSSENCRequest after the encryption negotiation.
    #[error("unsupported frontend protocol: encryption was already negotiated")]
    LateNegotiation,
    /// A message length below 4 or above the message type's limit.
    #[error("invalid message length")]
    Length,
    /// A message type byte the protocol does not have.
    #[error("invalid frontend message type {0}")]
    UnknownType(u8),
    /// Fields that do not fit the message's length, or bytes left after its last field.
    #[error("invalid message format")]
    Format,
    /// A Describe or Close whose target is neither `S` nor `P`.
    #[error("invalid DESCRIBE or CLOSE message subtype {0}")]
    Subtype(u8),
}

impl FrameError {
    /// The error inside an `io::Error` that [`guard`]'s stream returned, if it is one.
    pub fn of(error: &io::Error) -> Option<&FrameError> {
        error.get_ref()?.downcast_ref::<FrameError>()
    }
}

/// Splits frontend frames off a byte buffer and checks each against the layout `pgwire` decodes.
#[derive(Debug)]
pub struct FrameChecker {
    /// The StartupMessage (or CancelRequest) has been seen: every later frame is typed.
    started: bool,
    /// The next `p` message must be a SASLInitialResponse (SCRAM is the authentication method and
    /// none came yet).
    sasl_initial_next: bool,
}

impl FrameChecker {
    /// A checker for a connection whose encryption negotiation is over (the next frame is the
    /// StartupMessage or a CancelRequest). `sasl` says the authentication is SASL (SCRAM), whose first
    /// password-family message has a structure of its own.
    pub fn new(sasl: bool) -> Self {
        Self {
            started: false,
            sasl_initial_next: sasl,
        }
    }

    /// Splits the first whole frame off `buf`: `Ok(None)` while it is incomplete, an error when it
    /// cannot be a valid message (the connection cannot go on: its framing is lost).
    pub fn next_frame(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if !self.started {
            let Some(length) = length_at(buf, 0) else {
                return Ok(None);
            };
            if !(8..=MAX_STARTUP_LENGTH).contains(&length) {
                return Err(FrameError::StartupLength);
            }
            if buf.len() < length {
                return Ok(None);
            }
            let frame = buf.split_to(length).freeze();
            check_startup(&frame)?;
            self.started = true;
            return Ok(Some(frame));
        }
        if buf.len() < 5 {
            return Ok(None);
        }
        let kind = buf[0];
        let length = length_at(buf, 1).unwrap_or(0);
        let limit = match kind {
            b'Q' | b'P' | b'B' | b'd' | b'p' | b'f' => MAX_LARGE_LENGTH,
            b'C' | b'D' | b'E' | b'H' | b'S' | b'X' | b'c' => MAX_SMALL_LENGTH,
            other => return Err(FrameError::UnknownType(other)),
        };
        if !(4..=limit).contains(&length) {
            return Err(FrameError::Length);
        }
        if buf.len() < 1 + length {
            return Ok(None);
        }
        let frame = buf.split_to(1 + length).freeze();
        self.check_typed(kind, &frame[5..])?;
        Ok(Some(frame))
    }

    /// Checks the body of a typed message as `pgwire` will read it (field order of PostgreSQL's
    /// protocol chapter, "Message Formats").
    fn check_typed(&mut self, kind: u8, body: &[u8]) -> Result<(), FrameError> {
        let mut fields = Fields(body);
        match kind {
            // Query, CopyFail: one string.
            b'Q' | b'f' => {
                fields.cstring()?;
            }
            // Parse: statement name, query, parameter type count and OIDs.
            b'P' => {
                fields.cstring()?;
                fields.cstring()?;
                let types = fields.u16()?;
                fields.skip(usize::from(types) * 4)?;
            }
            // Bind: portal, statement, format codes, parameters (length-prefixed, -1 for NULL),
            // result format codes.
            b'B' => {
                fields.cstring()?;
                fields.cstring()?;
                let formats = fields.u16()?;
                fields.skip(usize::from(formats) * 2)?;
                for _ in 0..fields.u16()? {
                    match fields.i32()? {
                        -1 => {}
                        length if length >= 0 => fields.skip(length as usize)?,
                        _ => return Err(FrameError::Format),
                    }
                }
                let results = fields.u16()?;
                fields.skip(usize::from(results) * 2)?;
            }
            // Describe, Close: `S` or `P`, then a name.
            b'D' | b'C' => {
                let target = fields.u8()?;
                if target != b'S' && target != b'P' {
                    return Err(FrameError::Subtype(target));
                }
                fields.cstring()?;
            }
            // Execute: portal, row limit.
            b'E' => {
                fields.cstring()?;
                fields.i32()?;
            }
            // Flush, Sync, Terminate, CopyDone: nothing.
            b'H' | b'S' | b'X' | b'c' => {}
            // CopyData: any bytes.
            b'd' => fields.0 = &[],
            // Password family: the first one under SASL is a SASLInitialResponse (mechanism, then
            // length-prefixed data or -1); a password or a SASLResponse is read as it is.
            b'p' => {
                if std::mem::take(&mut self.sasl_initial_next) {
                    fields.cstring()?;
                    match fields.i32()? {
                        -1 => {}
                        length if length >= 0 => fields.skip(length as usize)?,
                        _ => return Err(FrameError::Format),
                    }
                } else {
                    fields.0 = &[];
                }
            }
            other => return Err(FrameError::UnknownType(other)),
        }
        fields.end()
    }
}

/// The big-endian length at `at`, if four bytes are there (a negative length is returned as huge).
fn length_at(buf: &[u8], at: usize) -> Option<usize> {
    let bytes = buf.get(at..at + 4)?;
    let length = i32::from_be_bytes(bytes.try_into().ok()?);
    Some(usize::try_from(length).unwrap_or(usize::MAX))
}

/// A startup-phase frame: a CancelRequest, or a StartupMessage whose parameters are name/value
/// strings closed by an empty name at the frame's last byte.
fn check_startup(frame: &[u8]) -> Result<(), FrameError> {
    let mut fields = Fields(&frame[4..]);
    match fields.i32()? {
        CANCEL_REQUEST_CODE => {
            if !CANCEL_LENGTHS.contains(&frame.len()) {
                return Err(FrameError::StartupLength);
            }
            Ok(())
        }
        SSL_REQUEST_CODE | GSSENC_REQUEST_CODE => Err(FrameError::LateNegotiation),
        _ => {
            // `pgwire` reads names and values until an empty name (a value may be empty).
            loop {
                if fields.cstring()?.is_empty() {
                    break;
                }
                fields.cstring()?;
            }
            fields.end()
        }
    }
}

/// A cursor over a message body whose reads fail instead of running past the end.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.0.len() < n {
            return Err(FrameError::Format);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn skip(&mut self, n: usize) -> Result<(), FrameError> {
        self.take(n).map(drop)
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, FrameError> {
        Ok(self.take(2)?.get_u16())
    }

    fn i32(&mut self) -> Result<i32, FrameError> {
        Ok(self.take(4)?.get_i32())
    }

    /// A NUL-terminated string, without its NUL.
    fn cstring(&mut self) -> Result<&'a [u8], FrameError> {
        let end = self
            .0
            .iter()
            .position(|&b| b == 0)
            .ok_or(FrameError::Format)?;
        let text = self.take(end + 1)?;
        Ok(&text[..end])
    }

    fn end(&self) -> Result<(), FrameError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Format)
        }
    }
}

/// Fired when the client's side of the connection is closed (EOF or a read error), stored in the
/// connection's session extensions for the session to cancel what it runs.
#[derive(Debug, Clone, Default)]
pub struct ClientGone(pub CancellationToken);

/// A connection's stream after [`guard`]: reads give checked frames only, writes go to the socket.
#[derive(Debug)]
pub struct Guarded<S> {
    frames: mpsc::Receiver<io::Result<Bytes>>,
    pending: Bytes,
    write: WriteHalf<S>,
    reader: JoinHandle<()>,
}

/// Wraps a negotiated connection: a task reads the socket, splits and checks frames (starting with the
/// bytes already read into `pending`) and hands them to the returned stream, at most a few frames
/// ahead; a frame that fails its check is handed on as an `io::Error` carrying the [`FrameError`] and
/// reading stops. `gone` fires when the client's side closes. Dropping the stream stops the task and
/// closes the socket.
pub fn guard<S>(io: S, pending: BytesMut, checker: FrameChecker, gone: ClientGone) -> Guarded<S>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let (tx, frames) = mpsc::channel(READ_AHEAD_FRAMES);
    let reader = tokio::spawn(read_frames(read, pending, checker, tx, gone));
    Guarded {
        frames,
        pending: Bytes::new(),
        write,
        reader,
    }
}

async fn read_frames<R: AsyncRead + Unpin>(
    mut read: R,
    mut buf: BytesMut,
    mut checker: FrameChecker,
    tx: mpsc::Sender<io::Result<Bytes>>,
    gone: ClientGone,
) {
    loop {
        loop {
            match checker.next_frame(&mut buf) {
                Ok(Some(frame)) => {
                    if tx.send(Ok(frame)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(error = %e, "malformed frontend message");
                    let _ = tx
                        .send(Err(io::Error::new(io::ErrorKind::InvalidData, e)))
                        .await;
                    return;
                }
            }
        }
        buf.reserve(8192);
        match read.read_buf(&mut buf).await {
            Ok(0) => {
                gone.0.cancel();
                return;
            }
            Ok(_) => {}
            Err(e) => {
                gone.0.cancel();
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

impl<S> Drop for Guarded<S> {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl<S: AsyncRead> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.pending.is_empty() {
            match ready!(this.frames.poll_recv(cx)) {
                Some(Ok(frame)) => this.pending = frame,
                Some(Err(e)) => return Poll::Ready(Err(e)),
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().write).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().write).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().write).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().write).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.write.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut frame = vec![kind];
        frame.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        frame.extend_from_slice(body);
        frame
    }

    fn started() -> FrameChecker {
        let mut checker = FrameChecker::new(false);
        checker.started = true;
        checker
    }

    fn check(checker: &mut FrameChecker, bytes: &[u8]) -> Result<Option<Bytes>, FrameError> {
        checker.next_frame(&mut BytesMut::from(bytes))
    }

    #[test]
    fn startup_parameters_must_end_at_the_frame_end() {
        let mut body = 196608i32.to_be_bytes().to_vec();
        body.extend_from_slice(b"user\0alice\0database\0tpch\0\0");
        let mut frame = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        assert!(
            check(&mut FrameChecker::new(false), &frame)
                .unwrap()
                .is_some()
        );

        // The terminator missing: pgwire would read on into the next message.
        let mut short = frame.clone();
        short.pop();
        let length = (short.len() as i32).to_be_bytes();
        short[..4].copy_from_slice(&length);
        assert_eq!(
            check(&mut FrameChecker::new(false), &short),
            Err(FrameError::Format)
        );
        assert_eq!(
            check(&mut FrameChecker::new(false), &[0, 0, 0, 4, 0, 0, 0, 0]),
            Err(FrameError::StartupLength)
        );
    }

    #[test]
    fn bind_counts_that_lie_are_refused() {
        // Portal "", statement "s", 0 formats, 1 parameter of 10 bytes but only 3 present.
        let mut body = b"\0s\0\0\0\0\x01".to_vec();
        body.extend_from_slice(&10i32.to_be_bytes());
        body.extend_from_slice(b"abc\0\0");
        assert_eq!(
            check(&mut started(), &typed(b'B', &body)),
            Err(FrameError::Format)
        );
        let mut good = b"\0s\0\0\0\0\x01".to_vec();
        good.extend_from_slice(&3i32.to_be_bytes());
        good.extend_from_slice(b"abc\0\0");
        assert!(
            check(&mut started(), &typed(b'B', &good))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn parse_type_count_and_trailing_bytes() {
        assert!(
            check(&mut started(), &typed(b'P', b"\0select 1\0\0\0"))
                .unwrap()
                .is_some()
        );
        assert_eq!(
            check(&mut started(), &typed(b'P', b"\0select 1\0\0\x05")),
            Err(FrameError::Format)
        );
        assert_eq!(
            check(&mut started(), &typed(b'S', b"x")),
            Err(FrameError::Format)
        );
        assert_eq!(
            check(&mut started(), &[b'S', 0, 0, 0, 2]),
            Err(FrameError::Length)
        );
        assert_eq!(
            check(&mut started(), &typed(b'Z', b"")),
            Err(FrameError::UnknownType(b'Z'))
        );
    }

    #[test]
    fn incomplete_frames_wait() {
        let frame = typed(b'Q', b"select 1\0");
        let mut buf = BytesMut::from(&frame[..7]);
        assert_eq!(started().next_frame(&mut buf), Ok(None));
        assert_eq!(buf.len(), 7);
    }

    #[test]
    fn sasl_initial_response_length_is_checked() {
        let mut checker = FrameChecker::new(true);
        checker.started = true;
        let mut body = b"SCRAM-SHA-256\0".to_vec();
        body.extend_from_slice(&100i32.to_be_bytes());
        body.extend_from_slice(b"n,,n=,r=abc");
        assert_eq!(
            check(&mut checker, &typed(b'p', &body)),
            Err(FrameError::Format)
        );
        // A later `p` (the SASLResponse) is raw data.
        assert!(
            check(&mut checker, &typed(b'p', b"c=biws"))
                .unwrap()
                .is_some()
        );
    }
}
