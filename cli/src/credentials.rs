//! The saved login: `$XDG_CONFIG_HOME/ninaivalaigal/credentials.json`,
//! readable by its owner only (0600, in a 0700 directory), replaced
//! atomically so a crash never leaves half a file, and locked while a token
//! is refreshed so two `eM` processes never spend the same refresh token
//! (the auth-service revokes a session whose refresh token is used twice).

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    config::same_server,
    exit::{Failure, Kind, Server},
};

/// Everything `eM` keeps between runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// Email of the logged-in account.
    pub email: String,
    /// Id of the account.
    pub user_id: i64,
    /// Id of the session.
    pub session_id: String,
    /// Bearer token for the services.
    pub access_token: String,
    /// When the access token stops being accepted.
    pub access_token_expire_time: DateTime<Utc>,
    /// Single-use token that buys a new session.
    pub refresh_token: String,
    /// When the refresh token stops being accepted.
    pub refresh_token_expire_time: DateTime<Utc>,
    /// When this session was obtained, to know the token's lifetime.
    pub obtain_time: DateTime<Utc>,
    /// memory-service URL used at login.
    pub server_url: String,
    /// auth-service URL that issued the tokens.
    pub auth_url: String,
}

impl Credentials {
    /// Refuses to send these tokens to any server but the one of the same
    /// kind they were obtained with: a flag or a variable (perhaps set by
    /// a directory's `.envrc`) pointing elsewhere must not hand them out.
    /// Logging in at the new URL replaces them.
    pub fn check_destination(&self, to: &Server) -> Result<(), Failure> {
        let bound = match to {
            Server::Memory(_) => &self.server_url,
            Server::Auth(_) => &self.auth_url,
        };
        if same_server(bound, to.url()) {
            return Ok(());
        }
        Err(Failure::new(
            Kind::Auth,
            format!(
                "your saved login is for the {} at {bound}; refusing to send it to {}",
                to.name(),
                to.url()
            ),
        )
        .hint(format!(
            "run `eM login {} {}` to log in there, or leave out {} to use the saved login",
            to.flag(),
            to.url(),
            to.setting()
        )))
    }
}

/// Where the credentials live.
#[derive(Clone, Debug)]
pub struct CredentialsFile {
    path: PathBuf,
}

impl CredentialsFile {
    /// The file under the user's configuration directory: `$XDG_CONFIG_HOME`
    /// when set (also on macOS, so tests and scripts can isolate themselves),
    /// the platform's default otherwise.
    pub fn locate() -> Result<Self, Failure> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
            .or_else(dirs::config_dir)
            .ok_or_else(|| {
                Failure::new(Kind::Other, "cannot find your configuration directory")
                    .hint("set XDG_CONFIG_HOME to a directory eM may write to")
            })?;
        Ok(Self::at(
            base.join("ninaivalaigal").join("credentials.json"),
        ))
    }

    /// A credentials file at an explicit path.
    pub fn at(path: PathBuf) -> Self {
        Self { path }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved credentials, or `None` when nobody is logged in.
    pub fn load(&self) -> Result<Option<Credentials>, Failure> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(self.io_failure("read", &error)),
        };
        serde_json::from_str(&text).map(Some).map_err(|error| {
            Failure::new(
                Kind::Auth,
                format!("{} is damaged: {error}", self.path.display()),
            )
            .hint("run `eM login` to replace it")
        })
    }

    /// Replaces the saved credentials atomically; the file is created 0600.
    pub fn save(&self, credentials: &Credentials) -> Result<(), Failure> {
        let dir = self.ensure_dir()?;
        let json = serde_json::to_vec_pretty(credentials).map_err(|error| {
            Failure::new(Kind::Other, format!("cannot encode credentials: {error}"))
        })?;
        // tempfile creates the file 0600 in the same directory, so the rename
        // below is atomic and the secret is never readable by others.
        let mut temp = tempfile::NamedTempFile::new_in(&dir)
            .map_err(|error| self.io_failure("write", &error))?;
        temp.write_all(&json)
            .and_then(|()| temp.as_file().sync_all())
            .map_err(|error| self.io_failure("write", &error))?;
        temp.persist(&self.path)
            .map_err(|error| self.io_failure("write", &error.error))?;
        Ok(())
    }

    /// Deletes the saved credentials; `Ok(false)` if there were none.
    pub fn remove(&self) -> Result<bool, Failure> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(self.io_failure("delete", &error)),
        }
    }

    /// Holds an exclusive lock (a sibling `.lock` file) until dropped.
    pub async fn lock(&self) -> Result<File, Failure> {
        let dir = self.ensure_dir()?;
        let path = dir.join("credentials.lock");
        let file = open_private(&path).map_err(|error| self.io_failure("lock", &error))?;
        // Waiting for another process's refresh must not stall the runtime.
        tokio::task::spawn_blocking(move || file.lock().map(|()| file))
            .await
            .map_err(|error| Failure::new(Kind::Other, format!("lock task failed: {error}")))?
            .map_err(|error| self.io_failure("lock", &error))
    }

    fn ensure_dir(&self) -> Result<PathBuf, Failure> {
        let dir = self
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        create_private_dir(&dir)
            .map_err(|error| self.io_failure("create the directory of", &error))?;
        Ok(dir)
    }

    fn io_failure(&self, action: &str, error: &io::Error) -> Failure {
        Failure::new(
            Kind::Other,
            format!("cannot {action} {}: {error}", self.path.display()),
        )
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(unix)]
fn open_private(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::Duration;

    use super::*;

    pub(crate) fn sample() -> Credentials {
        let now = Utc::now();
        Credentials {
            email: "ada@example.com".to_owned(),
            user_id: 7,
            session_id: "00000000-0000-0000-0000-000000000001".to_owned(),
            access_token: "access".to_owned(),
            access_token_expire_time: now + Duration::hours(24),
            refresh_token: "refresh".to_owned(),
            refresh_token_expire_time: now + Duration::days(30),
            obtain_time: now,
            server_url: "http://127.0.0.1:13370".to_owned(),
            auth_url: "http://127.0.0.1:13371".to_owned(),
        }
    }

    #[test]
    fn saved_credentials_load_back_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = CredentialsFile::at(dir.path().join("ninaivalaigal/credentials.json"));
        assert_eq!(file.load().unwrap(), None);
        let credentials = sample();
        file.save(&credentials).unwrap();
        assert_eq!(file.load().unwrap(), Some(credentials.clone()));

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(file.path()).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let dir_mode = fs::metadata(file.path().parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(dir_mode, 0o700);
        }

        // Saving again replaces the file whole.
        let mut newer = credentials;
        newer.access_token = "newer".to_owned();
        file.save(&newer).unwrap();
        assert_eq!(file.load().unwrap(), Some(newer));
        assert!(file.remove().unwrap());
        assert!(!file.remove().unwrap());
        assert_eq!(file.load().unwrap(), None);
    }

    #[test]
    fn a_damaged_file_asks_for_a_new_login() {
        let dir = tempfile::tempdir().unwrap();
        let file = CredentialsFile::at(dir.path().join("credentials.json"));
        fs::write(file.path(), "{ not json").unwrap();
        let failure = file.load().unwrap_err();
        assert_eq!(failure.kind, Kind::Auth);
        assert_eq!(
            failure.hint.as_deref(),
            Some("run `eM login` to replace it")
        );
    }

    #[test]
    fn tokens_go_only_to_the_servers_they_were_obtained_with() {
        let saved = sample();
        for to in [
            Server::Memory("http://127.0.0.1:13370/".to_owned()),
            Server::Auth("http://127.0.0.1:13371".to_owned()),
        ] {
            saved.check_destination(&to).unwrap();
        }
        for to in [
            Server::Auth("http://evil.example".to_owned()),
            Server::Auth("http://127.0.0.1:13370".to_owned()),
            Server::Memory("http://127.0.0.1:13371".to_owned()),
            Server::Memory("https://127.0.0.1:13370".to_owned()),
        ] {
            let failure = saved.check_destination(&to).unwrap_err();
            assert_eq!(failure.kind, Kind::Auth);
            assert!(
                failure
                    .message
                    .contains(&format!("; refusing to send it to {}", to.url())),
                "{failure}"
            );
            assert!(failure.hint.unwrap().contains(&format!(
                "`eM login {} {}`",
                to.flag(),
                to.url()
            )));
        }
    }

    #[tokio::test]
    async fn the_lock_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let file = CredentialsFile::at(dir.path().join("credentials.json"));
        let held = file.lock().await.unwrap();
        let lock_path = dir.path().join("credentials.lock");
        let other = File::open(&lock_path).unwrap();
        assert!(other.try_lock().is_err(), "a second holder must wait");
        drop(held);
        assert!(other.try_lock().is_ok());
    }
}
