//! One lazily opened connection, reopened after the server went away, and the mapping of
//! driver errors to [`BackendError`]s that name no credential.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::backend::BackendError;
use cairn_core::tls::{TlsTrust, client_config};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The environment variable naming a CA file that verifies the server's certificate under
/// `sslmode=require`.
pub const CA_ENV: &str = "CAIRN_BACKEND_CA";

/// Parsed connection settings.
pub(crate) struct Settings {
    config: Config,
    tls: Option<MakeRustlsConnect>,
    /// `postgres://user@host:port/db`, never the password.
    pub(crate) describe: String,
}

impl Settings {
    pub(crate) fn parse(url: &str) -> Result<Settings, BackendError> {
        let mut config: Config = url.parse().map_err(|_| {
            BackendError::Config(
                "CAIRN_BACKEND is not a valid postgres:// URL (libpq syntax: postgres://user:password@host:port/db?sslmode=require)".into(),
            )
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.application_name("cairn");
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let describe = format!(
            "postgres://{}@{host}:{port}/{}",
            config.get_user().unwrap_or(""),
            config.get_dbname().unwrap_or("")
        );
        let tls = match config.get_ssl_mode() {
            SslMode::Require => {
                let trust = match std::env::var_os(CA_ENV) {
                    Some(p) => TlsTrust::CaFile(p.into()),
                    // libpq's `require`: encrypted, certificate not verified.
                    None => TlsTrust::Insecure,
                };
                let cfg = client_config(&trust).map_err(|e| BackendError::Config(e.to_string()))?;
                Some(MakeRustlsConnect::new(cfg))
            }
            _ => None,
        };
        Ok(Settings {
            config,
            tls,
            describe,
        })
    }

    async fn connect(&self) -> Result<Client, BackendError> {
        let map = |e| map_err(&self.describe, e);
        let client = match &self.tls {
            None => {
                let (client, conn) = self.config.connect(NoTls).await.map_err(map)?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("backend connection ended: {e}");
                    }
                });
                client
            }
            Some(tls) => {
                let (client, conn) = self.config.connect(tls.clone()).await.map_err(map)?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("backend connection ended: {e}");
                    }
                });
                client
            }
        };
        Ok(client)
    }
}

/// What a unit of work against the database can fail with.
pub(crate) enum Fail {
    /// The driver failed.
    Pg(tokio_postgres::Error),
    /// A domain error (held lock, unknown run, newer schema).
    Backend(BackendError),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Pg(e)
    }
}

/// A unit of work on a client.
pub(crate) type Work<'a, T> = Pin<Box<dyn Future<Output = Result<T, Fail>> + Send + 'a>>;

/// One connection, opened on first use and reopened after it closed.
pub(crate) struct Conn {
    settings: Arc<Settings>,
    client: tokio::sync::Mutex<Option<Client>>,
}

impl Conn {
    pub(crate) fn new(settings: Arc<Settings>) -> Conn {
        Conn {
            settings,
            client: tokio::sync::Mutex::new(None),
        }
    }

    pub(crate) fn describe(&self) -> &str {
        &self.settings.describe
    }

    /// Runs `f` on the connection (opening it first if needed). A connection that broke is
    /// dropped so the next call reconnects.
    pub(crate) async fn with<T>(
        &self,
        f: impl for<'a> FnOnce(&'a mut Client) -> Work<'a, T>,
    ) -> Result<T, BackendError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            *guard = Some(self.settings.connect().await?);
        }
        let client = guard.as_mut().expect("connected above");
        match f(client).await {
            Ok(v) => Ok(v),
            Err(Fail::Backend(e)) => Err(e),
            Err(Fail::Pg(e)) => {
                if e.is_closed() || client.is_closed() || e.as_db_error().is_none() {
                    *guard = None;
                }
                Err(map_err(&self.settings.describe, e))
            }
        }
    }
}

/// A driver error as a backend error.
pub(crate) fn map_err(backend: &str, e: tokio_postgres::Error) -> BackendError {
    let backend = backend.to_string();
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            || db.message().contains("password authentication failed")
        {
            return BackendError::Auth {
                backend,
                reason: db.message().to_string(),
            };
        }
        return BackendError::Storage {
            backend,
            reason: format!("{} ({})", db.message(), code.code()),
        };
    }
    let text = with_causes(&e);
    if e.is_closed()
        || text.contains("connect")
        || text.contains("timed out")
        || text.contains("closed")
    {
        BackendError::Unreachable {
            backend,
            reason: text,
        }
    } else {
        BackendError::Storage {
            backend,
            reason: text,
        }
    }
}

/// The driver's message followed by its causes: its own text says only "error connecting to
/// server"; the cause says why ("Connection refused", a TLS failure). Neither holds the URL's
/// password.
fn with_causes(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let cause = s.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        src = s.source();
    }
    text
}
