//! The PostgreSQL wire front end: a thin layer on the `pgwire` crate. Protocol messages come in, statements
//! go to the [`Engine`], Arrow batches come back and are encoded as rows.
//!
//! - [`startup`]: TLS policy, authentication (pgwire's handlers), ParameterStatus burst, database
//!   (catalog) check, BackendKeyData;
//! - [`session`]: per-connection state, `SET` / `SHOW` / `RESET` and transaction statements;
//! - [`statement`]: SQL text to statements, and statements to DataFusion plans;
//! - [`simple`] and [`extended`]: the two query sub-protocols;
//! - [`encoding`]: Arrow schemas and batches to pgwire fields and rows, bind parameters to values;
//! - [`errors`]: every error to an SQLSTATE, in one place;
//! - [`cancel`]: CancelRequest to the running query of a session;
//! - [`frames`]: every frontend message checked before `pgwire` decodes it, and the client's going
//!   noticed while a query runs.

pub mod cancel;
pub mod catalog;
pub mod column_names;
pub mod compat;
pub mod copy;
pub mod encoding;
pub mod errors;
pub mod extended;
pub mod frames;
pub mod rewrite;
pub mod rows;
pub mod run;
pub mod session;
pub mod simple;
pub mod startup;
pub mod statement;

use std::sync::Arc;

use pgwire::api::PgWireServerHandlers;
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::CancelHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use tokio::net::TcpListener;
use tributary_exec::Engine;

use self::cancel::CancelRegistry;
use crate::auth::Security;

/// The handlers of every connection: shared, stateless apart from the engine and the cancel registry.
/// Per-connection state lives in [`session::Session`], stored in the connection's session extensions.
#[derive(Debug)]
pub struct Frontend {
    engine: Arc<Engine>,
    cancels: Arc<CancelRegistry>,
    parser: Arc<extended::StatementParser>,
    pg_catalog: Arc<catalog::PgCatalog>,
    security: Arc<Security>,
}

impl Frontend {
    /// The number of sessions connected now.
    pub fn session_count(&self) -> usize {
        self.cancels.snapshot().len()
    }

    /// Cancels running query `query_id` on behalf of `user` (HTTP `DELETE /v1/query/ID`), with
    /// `pg_cancel_backend`'s rule: only the query's own user, or one of `[auth] admin_users`.
    /// `Ok(true)`: it was running and is canceled; `Ok(false)`: no such running query.
    pub fn cancel_query(&self, query_id: &str, user: &str) -> Result<bool, ()> {
        let Some(info) = self
            .engine
            .tracker()
            .query_infos()
            .into_iter()
            .find(|q| q.query_id == query_id)
        else {
            return Ok(false);
        };
        if info.user != user && !self.engine.config().auth.is_admin(user) {
            return Err(());
        }
        Ok(self.engine.cancel(query_id))
    }

    /// How clients authenticate (the HTTP listener checks the same users).
    pub fn security(&self) -> &Arc<Security> {
        &self.security
    }

    pub fn new(engine: Arc<Engine>, security: Arc<Security>) -> Self {
        // The library's static catalog rows are compiled in: failing to read them is a build defect.
        let pg_catalog = catalog::PgCatalog::new(engine.registry().catalog_list())
            .expect("the embedded pg_catalog data is readable");
        let cancels = Arc::new(CancelRegistry::default());
        pg_catalog.set_activity(Arc::new(cancel::SessionActivity {
            registry: cancels.clone(),
            engine: engine.clone(),
        }));
        Self {
            pg_catalog,
            engine,
            cancels,
            parser: Arc::new(extended::StatementParser),
            security,
        }
    }
}

/// `pgwire` asks for one handler per concern; [`Frontend`] implements them all.
#[derive(Debug, Clone)]
struct Handlers(Arc<Frontend>);

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.0.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.0.clone()
    }

    /// Called once per connection: the password handlers keep per-connection state.
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(startup::ConnectionStartup::new(self.0.clone()))
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.0.clone()
    }
}

/// Accepts connections forever, one task per connection. SSLRequest gets `S` and a TLS handshake
/// when `[tls]` has a certificate, `N` otherwise.
pub async fn serve(listener: TcpListener, frontend: Arc<Frontend>) {
    let tls = frontend
        .security
        .tls
        .as_ref()
        .map(|tls| tls.acceptor.clone());
    let handlers = Handlers(frontend);
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                // Out of file descriptors and the like: back off instead of spinning on the error.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let handlers = handlers.clone();
        let tls = tls.clone();
        let sasl = handlers.0.security.uses_sasl();
        // The session's span: its `pid` and `user` are recorded once the startup knows them.
        let span = tracing::info_span!(
            "session",
            %peer,
            pid = tracing::field::Empty,
            user = tracing::field::Empty
        );
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                tracing::debug!("connection");
                if let Err(e) = serve_connection(socket, tls, handlers, sasl).await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            },
            span,
        ));
    }
}

/// How long a client has to finish its startup and authentication (pgwire's own bound), else the
/// connection is dropped.
const STARTUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// One connection, as `pgwire::tokio::process_socket` runs it (encryption negotiation, then each
/// message to its handler, errors as ErrorResponse), except that the socket is read through
/// [`frames::guard`]: a malformed message ends the connection with a FATAL `08P01` ErrorResponse
/// instead of a panic inside `pgwire`'s decoder, and the client's closing is noticed while a query
/// runs. `sasl`: the authentication is SCRAM (its first password message is checked as a
/// SASLInitialResponse).
async fn serve_connection(
    socket: tokio::net::TcpStream,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    handlers: Handlers,
    sasl: bool,
) -> std::io::Result<()> {
    use futures::{SinkExt, StreamExt};
    use pgwire::api::{ClientInfo, PgWireConnectionState};
    use pgwire::error::PgWireError;
    use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
    use tokio_util::codec::{Framed, FramedParts};

    let startup_timeout = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup_timeout);
    let negotiated = tokio::select! {
        _ = &mut startup_timeout => return Ok(()),
        negotiated = pgwire::tokio::server::negotiate_tls(socket, tls) => negotiated?,
    };
    // A direct TLS handshake while TLS is not configured: nothing to answer.
    let Some(negotiated) = negotiated else {
        return Ok(());
    };
    let parts = negotiated.into_parts();
    let gone = frames::ClientGone::default();
    let io = frames::guard(
        parts.io,
        parts.read_buf,
        frames::FrameChecker::new(sasl),
        gone.clone(),
    );
    let mut guarded = FramedParts::new::<PgWireBackendMessage>(io, parts.codec);
    guarded.write_buf = parts.write_buf;
    let mut socket = Framed::from_parts(guarded);
    socket.session_extensions().get_or_insert_with(|| gone);
    let terminate = cancel::Terminate::default();
    socket
        .session_extensions()
        .get_or_insert_with(|| terminate.clone());

    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let on_error = handlers.error_handler();
    loop {
        let next = if matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        ) {
            tokio::select! {
                _ = &mut startup_timeout => None,
                next = socket.next() => next,
            }
        } else {
            // Biased: a session terminated while idle must not run the statement that arrives
            // after pg_terminate_backend returned.
            tokio::select! {
                biased;
                () = terminate.0.cancelled() => return terminated(&mut socket).await,
                next = socket.next() => next,
            }
        };
        let message = match next {
            None | Some(Ok(PgWireFrontendMessage::Terminate(_))) => break,
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                let refused = match &e {
                    PgWireError::IoError(io) => match frames::FrameError::of(io) {
                        Some(frame) => frame.to_string(),
                        // The connection broke: nobody to tell.
                        None => return Ok(()),
                    },
                    // pgwire's decoder refused the message (too long, bad protocol version).
                    other => other.to_string(),
                };
                let info = pgwire::error::ErrorInfo::new(
                    "FATAL".into(),
                    errors::sqlstate::PROTOCOL_VIOLATION.into(),
                    refused,
                );
                socket
                    .send(PgWireBackendMessage::ErrorResponse(info.into()))
                    .await?;
                return socket.close().await;
            }
        };
        let in_extended = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        let processed = tokio::select! {
            // Biased: once terminated, the FATAL goes out even if the query's cancel error is ready.
            // The running query is canceled by whoever terminated the session; what was encoded of
            // its answer stays ahead of the FATAL in the connection's write buffer.
            biased;
            () = terminate.0.cancelled() => return terminated(&mut socket).await,
            processed = pgwire::tokio::server::process_message(
                message,
                &mut socket,
                startup.clone(),
                simple.clone(),
                extended.clone(),
                copy.clone(),
                cancel.clone(),
            ) => processed,
        };
        if let Err(mut e) = processed {
            pgwire::api::ErrorHandler::on_error(on_error.as_ref(), &socket, &mut e);
            pgwire::tokio::server::process_error(&mut socket, e, in_extended).await?;
        }
    }
    Ok(())
}

/// Ends a terminated session as PostgreSQL does: FATAL `57P01`, then the connection closes.
async fn terminated<S>(socket: &mut S) -> std::io::Result<()>
where
    S: futures::Sink<pgwire::messages::PgWireBackendMessage, Error = std::io::Error> + Unpin,
{
    use futures::SinkExt;
    tracing::info!("session terminated by pg_terminate_backend");
    let info = pgwire::error::ErrorInfo::new(
        "FATAL".into(),
        errors::sqlstate::ADMIN_SHUTDOWN.into(),
        "terminating connection due to administrator command".into(),
    );
    socket
        .send(pgwire::messages::PgWireBackendMessage::ErrorResponse(
            info.into(),
        ))
        .await?;
    socket.close().await
}
