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
//! - [`cancel`]: CancelRequest to the running query of a session.

pub mod cancel;
pub mod catalog;
pub mod column_names;
pub mod compat;
pub mod copy;
pub mod encoding;
pub mod errors;
pub mod extended;
pub mod rewrite;
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
pub async fn serve(listener: TcpListener, engine: Arc<Engine>, security: Security) {
    let tls = security.tls.as_ref().map(|tls| tls.acceptor.clone());
    let handlers = Handlers(Arc::new(Frontend::new(engine, Arc::new(security))));
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
                if let Err(e) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            },
            span,
        ));
    }
}
