//! Connection startup: trust authentication (any user, no password, for now), the startup database as
//! the default catalog (`3D000` with the list of catalogs when there is no such catalog), the
//! ParameterStatus burst PostgreSQL 15 sends, and BackendKeyData for CancelRequest.

use std::fmt::Debug;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    StartupHandler, protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::api::{
    ClientInfo, METADATA_APPLICATION_NAME, METADATA_DATABASE, METADATA_USER, PgWireConnectionState,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::response::{ReadyForQuery, TransactionStatus};
use pgwire::messages::startup::{Authentication, BackendKeyData, ParameterStatus};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use std::sync::LazyLock;

use super::Frontend;
use super::errors::sqlstate;
use super::session::Session;

static PIDS: LazyLock<RandomPidSecretKeyGenerator> = LazyLock::new(Default::default);

#[async_trait]
impl StartupHandler for Frontend {
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
        let PgWireFrontendMessage::Startup(ref startup) = message else {
            return Ok(());
        };
        protocol_negotiation(client, startup).await?;
        save_startup_parameters_to_metadata(client, startup);
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
        let registration = self.cancels.register(pid, &secret);
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
