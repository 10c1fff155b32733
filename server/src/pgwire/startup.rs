//! Connection startup: TLS policy (`[tls] required`), authentication, the startup database as the
//! default catalog (`3D000` with the list of catalogs when there is no such catalog), the
//! ParameterStatus burst PostgreSQL 15 sends, and BackendKeyData for CancelRequest.
//!
//! Authentication is pgwire's: its SASL (SCRAM-SHA-256, with -PLUS channel binding over TLS), md5
//! and cleartext handlers run the exchange against [`UsersSource`]. They end by sending
//! AuthenticationOk and their own ParameterStatus / BackendKeyData / ReadyForQuery; the
//! [`Authenticating`] wrapper the handler writes through drops those, and [`Frontend::begin_session`]
//! sends Tributary's instead once the login succeeded. Failed logins are `28P01`, logged with user
//! and address (never the password).

use std::fmt::Debug;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::auth::cleartext::CleartextPasswordAuthStartupHandler;
use pgwire::api::auth::md5pass::Md5PasswordAuthStartupHandler;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::{
    ServerParameterProvider, StartupHandler, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::{
    ClientInfo, METADATA_APPLICATION_NAME, METADATA_DATABASE, METADATA_USER, PgWireConnectionState,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator, SessionExtensions,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::response::{ReadyForQuery, TransactionStatus};
use pgwire::messages::startup::{Authentication, BackendKeyData, ParameterStatus, SecretKey};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage, ProtocolVersion};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::LazyLock;
use tokio_rustls::rustls::pki_types::CertificateDer;

use super::Frontend;
use super::errors::sqlstate;
use super::session::Session;
use crate::auth::UsersSource;
use crate::config::AuthMethod;

static PIDS: LazyLock<RandomPidSecretKeyGenerator> = LazyLock::new(Default::default);

/// The startup handler of one connection (pgwire asks for one per connection, and its password
/// handlers keep per-connection state).
#[derive(Debug)]
pub struct ConnectionStartup {
    frontend: Arc<Frontend>,
    /// pgwire's handler for the configured method, made on the Startup message (when it is known
    /// whether the connection is TLS, which decides whether SCRAM offers channel binding).
    authenticator: OnceLock<Authenticator>,
}

impl ConnectionStartup {
    pub fn new(frontend: Arc<Frontend>) -> Self {
        Self {
            frontend,
            authenticator: OnceLock::new(),
        }
    }

    fn authenticator(&self, secure: bool) -> Option<&Authenticator> {
        let security = &self.frontend.security;
        let users = security.users.as_ref()?;
        let params = Arc::new(NoParameters);
        Some(self.authenticator.get_or_init(|| {
            let source = UsersSource(users.clone());
            match security.method {
                AuthMethod::Md5 => {
                    Authenticator::Md5(Md5PasswordAuthStartupHandler::new(Arc::new(source), params))
                }
                AuthMethod::Password => Authenticator::Cleartext(
                    CleartextPasswordAuthStartupHandler::new(source, NoParameters),
                ),
                AuthMethod::ScramSha256 | AuthMethod::Trust => {
                    let mut scram = ScramAuth::new(Arc::new(source));
                    scram.set_iterations(users.scram_iterations());
                    if secure
                        && let Some(tls) = &security.tls
                        && let Err(e) = scram.configure_certificate(&tls.cert_pem)
                    {
                        tracing::debug!(error = %e, "SCRAM channel binding unavailable");
                    }
                    Authenticator::Scram(SASLAuthStartupHandler::new(params).with_scram(scram))
                }
            }
        }))
    }
}

/// pgwire's authentication handler for the configured method.
enum Authenticator {
    Scram(SASLAuthStartupHandler<NoParameters>),
    Md5(Md5PasswordAuthStartupHandler<UsersSource, NoParameters>),
    Cleartext(CleartextPasswordAuthStartupHandler<UsersSource, NoParameters>),
}

impl Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Authenticator::Scram(_) => "Authenticator::Scram",
            Authenticator::Md5(_) => "Authenticator::Md5",
            Authenticator::Cleartext(_) => "Authenticator::Cleartext",
        })
    }
}

/// The handlers' own ParameterStatus burst is dropped anyway ([`Authenticating`]).
#[derive(Debug)]
struct NoParameters;

impl ServerParameterProvider for NoParameters {
    fn server_parameters<C: ClientInfo>(&self, _client: &C) -> Option<HashMap<String, String>> {
        None
    }
}

#[async_trait]
impl StartupHandler for ConnectionStartup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let PgWireFrontendMessage::Startup(ref startup) = message
            && self.frontend.security.tls_required
            && !client.is_secure()
        {
            let user = startup
                .parameters
                .get(METADATA_USER)
                .cloned()
                .unwrap_or_default();
            tracing::warn!(
                peer = %client.socket_addr(),
                %user,
                "refused a connection without TLS ([tls] required)"
            );
            let info = ErrorInfo::new(
                "FATAL".into(),
                sqlstate::INVALID_AUTHORIZATION_SPECIFICATION.into(),
                "this server requires TLS (connect with sslmode=require or stronger)".into(),
            );
            client
                .send(PgWireBackendMessage::ErrorResponse(info.into()))
                .await?;
            client.close().await?;
            return Ok(());
        }
        let Some(authenticator) = self.authenticator(client.is_secure()) else {
            // trust
            let PgWireFrontendMessage::Startup(ref startup) = message else {
                return Ok(());
            };
            protocol_negotiation(client, startup).await?;
            save_startup_parameters_to_metadata(client, startup);
            return self.frontend.begin_session(client).await;
        };
        let mut wrapped = Authenticating {
            client,
            authenticated: false,
        };
        let result = match authenticator {
            Authenticator::Scram(h) => h.on_startup(&mut wrapped, message).await,
            Authenticator::Md5(h) => h.on_startup(&mut wrapped, message).await,
            Authenticator::Cleartext(h) => h.on_startup(&mut wrapped, message).await,
        };
        let authenticated = wrapped.authenticated;
        match result {
            Ok(()) if authenticated => self.frontend.begin_session(client).await,
            Ok(()) => Ok(()),
            Err(e) => {
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                let known = self
                    .frontend
                    .security
                    .users
                    .as_ref()
                    .is_some_and(|u| u.contains(&user));
                tracing::warn!(
                    peer = %client.socket_addr(),
                    %user,
                    method = self.frontend.security.method.name(),
                    reason = if !matches!(e, PgWireError::InvalidPassword(_)) {
                        "protocol error"
                    } else if known {
                        "wrong password"
                    } else {
                        "no such user"
                    },
                    "authentication failed"
                );
                Err(match e {
                    // PostgreSQL's wording; pgwire's SCRAM names the user of the client-first
                    // message, which libpq leaves empty.
                    PgWireError::InvalidPassword(_) => {
                        PgWireError::UserError(Box::new(ErrorInfo::new(
                            "FATAL".into(),
                            sqlstate::INVALID_PASSWORD.into(),
                            format!("password authentication failed for user \"{user}\""),
                        )))
                    }
                    e => e,
                })
            }
        }
    }
}

impl Frontend {
    /// After authentication (or with trust): checks the database, makes the [`Session`] and sends
    /// AuthenticationOk, ParameterStatus, BackendKeyData and ReadyForQuery.
    async fn begin_session<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let metadata = client.metadata();
        let user = metadata.get(METADATA_USER).cloned().unwrap_or_default();
        let database = metadata
            .get(METADATA_DATABASE)
            .cloned()
            .unwrap_or_else(|| user.clone());
        let search_path = startup_option(metadata.get("options"), "search_path")
            .or_else(|| metadata.get("search_path").cloned());
        let application_name = metadata.get(METADATA_APPLICATION_NAME).cloned();

        let catalogs = self.engine.registry().names();
        if !catalogs.contains(&database) {
            let mut info = ErrorInfo::new(
                "FATAL".into(),
                sqlstate::INVALID_CATALOG_NAME.into(),
                format!("database \"{database}\" does not exist"),
            );
            info.hint = Some(format!("catalogs: {}", catalogs.join(", ")));
            tracing::info!(%user, %database, "refused connection to an unknown database");
            client
                .send(PgWireBackendMessage::ErrorResponse(info.into()))
                .await?;
            client.close().await?;
            return Ok(());
        }
        let (pid, secret) = PIDS.generate(client);
        client.set_pid_and_secret_key(pid, secret.clone());
        let registration = self.cancels.register(
            pid,
            &secret,
            super::cancel::SessionInfo {
                user: user.clone(),
                database: database.clone(),
                application_name: application_name.clone().unwrap_or_default(),
                client: client.socket_addr(),
                started_us: chrono::Utc::now().timestamp_micros(),
            },
        );
        if let Some(gone) = client
            .session_extensions()
            .get::<super::frames::ClientGone>()
        {
            registration.slot().cancel_when_client_gone(gone.0.clone());
        }
        if let Some(terminate) = client
            .session_extensions()
            .get::<super::cancel::Terminate>()
        {
            registration.slot().set_terminate(terminate.0.clone());
        }
        let session = Session::new(
            self.engine.clone(),
            self.pg_catalog.clone(),
            user.clone(),
            database.clone(),
            search_path.as_deref(),
            application_name.as_deref(),
            registration,
        );
        for (name, value) in client.metadata() {
            let skip = ["user", "database", "options", "replication", "search_path"];
            if !skip.contains(&name.as_str())
                && let Err(e) = session.set(name, Some(value))
            {
                tracing::debug!(%name, %value, error = %e.message, "startup parameter ignored");
            }
        }
        // The connection's span (`pgwire::serve`): every later line of the session carries them.
        let span = tracing::Span::current();
        span.record("pid", pid);
        span.record("user", user.as_str());
        tracing::info!(%user, catalog = %database, schema = %session.schema(), pid, "session started");

        client
            .feed(PgWireBackendMessage::Authentication(Authentication::Ok))
            .await?;
        for (name, value) in session.startup_reports() {
            client
                .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                    name, value,
                )))
                .await?;
        }
        client
            .feed(PgWireBackendMessage::BackendKeyData(BackendKeyData::new(
                pid, secret,
            )))
            .await?;
        client.session_extensions().insert(session);
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                TransactionStatus::Idle,
            )))
            .await?;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        Ok(())
    }
}

/// The client as pgwire's authentication handler sees it: everything passes through until the
/// handler sends AuthenticationOk, which (with the handler's ParameterStatus, BackendKeyData and
/// ReadyForQuery after it) is held back for [`Frontend::begin_session`] to send.
struct Authenticating<'a, C> {
    client: &'a mut C,
    authenticated: bool,
}

impl<C: Sink<PgWireBackendMessage> + Unpin> Sink<PgWireBackendMessage> for Authenticating<'_, C> {
    type Error = C::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.get_mut().client).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: PgWireBackendMessage) -> Result<(), Self::Error> {
        let this = self.get_mut();
        if matches!(
            item,
            PgWireBackendMessage::Authentication(Authentication::Ok)
        ) {
            this.authenticated = true;
        }
        if this.authenticated {
            return Ok(());
        }
        Pin::new(&mut *this.client).start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.get_mut().client).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.get_mut().client).poll_close(cx)
    }
}

impl<C: ClientInfo> ClientInfo for Authenticating<'_, C> {
    fn socket_addr(&self) -> SocketAddr {
        self.client.socket_addr()
    }

    fn is_secure(&self) -> bool {
        self.client.is_secure()
    }

    fn protocol_version(&self) -> ProtocolVersion {
        self.client.protocol_version()
    }

    fn set_protocol_version(&mut self, version: ProtocolVersion) {
        self.client.set_protocol_version(version)
    }

    fn pid_and_secret_key(&self) -> (i32, SecretKey) {
        self.client.pid_and_secret_key()
    }

    fn set_pid_and_secret_key(&mut self, pid: i32, secret_key: SecretKey) {
        self.client.set_pid_and_secret_key(pid, secret_key)
    }

    fn state(&self) -> PgWireConnectionState {
        self.client.state()
    }

    fn set_state(&mut self, new_state: PgWireConnectionState) {
        self.client.set_state(new_state)
    }

    fn transaction_status(&self) -> TransactionStatus {
        self.client.transaction_status()
    }

    fn set_transaction_status(&mut self, new_status: TransactionStatus) {
        self.client.set_transaction_status(new_status)
    }

    fn metadata(&self) -> &HashMap<String, String> {
        self.client.metadata()
    }

    fn metadata_mut(&mut self) -> &mut HashMap<String, String> {
        self.client.metadata_mut()
    }

    fn session_extensions(&self) -> &SessionExtensions {
        self.client.session_extensions()
    }

    fn sni_server_name(&self) -> Option<&str> {
        self.client.sni_server_name()
    }

    fn client_certificates<'a>(&self) -> Option<&[CertificateDer<'a>]> {
        self.client.client_certificates()
    }
}

/// A `-c name=value` (or `--name=value`) setting from the startup `options` parameter.
fn startup_option(options: Option<&String>, name: &str) -> Option<String> {
    let options = options?;
    let mut words = options.split_whitespace();
    while let Some(word) = words.next() {
        let setting = match word {
            "-c" => words.next()?,
            w => w.strip_prefix("-c").or_else(|| w.strip_prefix("--"))?,
        };
        if let Some((key, value)) = setting.split_once('=')
            && key.replace('-', "_").eq_ignore_ascii_case(name)
        {
            return Some(value.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_options() {
        let options = "-c search_path=tiny -c statement_timeout=5".to_string();
        assert_eq!(
            startup_option(Some(&options), "search_path").as_deref(),
            Some("tiny")
        );
        let options = "--search-path=sf1".to_string();
        assert_eq!(
            startup_option(Some(&options), "search_path").as_deref(),
            Some("sf1")
        );
        assert_eq!(startup_option(None, "search_path"), None);
    }
}
