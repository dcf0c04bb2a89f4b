//! Database handles: SQLite (WAL) by default, PostgreSQL by URL, one database per service.
//!
//! Queries are written once with `$1`-style placeholders, which both SQLite and PostgreSQL
//! accept, and plain `TEXT`/`BIGINT` columns, so one set of migrations serves both.

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};
use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("failed to open database {url}")]
    Open {
        url: String,
        #[source]
        err: sqlx::Error,
    },
    #[error("failed to create the directory of database {url}")]
    CreateDir {
        url: String,
        #[source]
        err: std::io::Error,
    },
    #[error("migration {version} ({name}) of {service} failed")]
    Migrate {
        service: String,
        version: i64,
        name: &'static str,
        #[source]
        err: sqlx::Error,
    },
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A pool on one service's database.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

/// One schema step. Statements are separated by `;` and must be portable SQL.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Db {
    pub async fn open(url: &str) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") { Backend::Postgres } else { Backend::Sqlite };
        let open_err = |err| DbError::Open { url: redact(url), err };
        let mut url_owned = url.to_string();
        if backend == Backend::Sqlite {
            let path = url.trim_start_matches("sqlite://").split('?').next().unwrap_or("");
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|err| DbError::CreateDir { url: url.into(), err })?;
                }
            }
            if !url.contains('?') {
                url_owned.push_str("?mode=rwc");
            }
        }
        let opts = AnyConnectOptions::from_str(&url_owned).map_err(open_err)?.disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode=WAL").await?;
                        conn.execute("PRAGMA synchronous=NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout=10000").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(open_err)?;
        Ok(Db { pool, backend })
    }

    /// Applies the migrations not yet applied, each in its own transaction, in version order.
    pub async fn migrate(&self, service: &str, migrations: &[Migration]) -> Result<(), DbError> {
        self.pool
            .execute(
                "CREATE TABLE IF NOT EXISTS haneul_migrations (service TEXT NOT NULL, version BIGINT NOT NULL, \
                 name TEXT NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (service, version))",
            )
            .await?;
        for m in migrations {
            let done: Option<(i64,)> =
                sqlx::query_as("SELECT version FROM haneul_migrations WHERE service = $1 AND version = $2")
                    .bind(service)
                    .bind(m.version)
                    .fetch_optional(&self.pool)
                    .await?;
            if done.is_some() {
                continue;
            }
            let err = |err| DbError::Migrate { service: service.into(), version: m.version, name: m.name, err };
            let mut tx = self.pool.begin().await.map_err(err)?;
            for stmt in m.sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                tx.execute(stmt).await.map_err(err)?;
            }
            sqlx::query("INSERT INTO haneul_migrations (service, version, name, applied_at) VALUES ($1, $2, $3, $4)")
                .bind(service)
                .bind(m.version)
                .bind(m.name)
                .bind(chrono::Utc::now().to_rfc3339())
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            tx.commit().await.map_err(err)?;
            tracing::info!(service, version = m.version, name = m.name, "applied migration");
        }
        Ok(())
    }
}

/// A URL with its password replaced, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}://{}:***@{}", &url[..s], user, &url[at + 1..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_password() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite:///x.db"), "sqlite:///x.db");
    }

    #[tokio::test]
    async fn migrations_apply_once() {
        let dir = std::env::temp_dir().join(format!("haneul-db-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}/t.db", dir.display());
        let db = Db::open(&url).await.unwrap();
        let m = [Migration { version: 1, name: "t", sql: "CREATE TABLE t (id TEXT PRIMARY KEY)" }];
        db.migrate("svc", &m).await.unwrap();
        db.migrate("svc", &m).await.unwrap();
        let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM haneul_migrations").fetch_one(&db.pool).await.unwrap();
        assert_eq!(n.0, 1);
        std::fs::remove_dir_all(dir).ok();
    }
}
