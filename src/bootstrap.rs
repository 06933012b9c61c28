//! First start and the files it leaves: the data directory kept private to the registry's own
//! user, the `admin` user created with a checked or a generated password, and a generated
//! password handed over in a mode 0600 file in the data directory.
//!
//! Nothing here ever logs or prints a password; a log line names the file, never its content.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Shortest bootstrap admin password accepted, in characters. Longer than the REST API's minimum
/// for ordinary users (8): this account can do everything, and it is typed into a config.
pub const MIN_ADMIN_PASSWORD_CHARS: usize = 12;

/// Name of the file in the data directory that receives a generated admin password.
pub const ADMIN_PASSWORD_FILE: &str = "admin-password";

/// The environment variable holding the bootstrap admin password.
pub const ADMIN_PASSWORD_ENV: &str = "STOWAGE_ADMIN_PASSWORD";

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(
        "{source_name} is empty; set it to a password of at least {min} characters, or leave it unset \
         to have one generated on first start"
    )]
    EmptyPassword { source_name: &'static str, min: usize },
    #[error(
        "{source_name} is {got} characters long; the admin password must be at least {min} characters \
         (or leave it unset to have one generated on first start)"
    )]
    ShortPassword { source_name: &'static str, got: usize, min: usize },
    #[error("{ADMIN_PASSWORD_ENV} is not valid UTF-8")]
    NotUnicode,
    #[error("data directory {path}: {what}: {source}")]
    DataDir { path: PathBuf, what: &'static str, source: std::io::Error },
    #[error("cannot write the generated admin password to {path}: {source}")]
    PasswordFile { path: PathBuf, source: std::io::Error },
}

/// Checks a bootstrap admin password from `source_name` (the variable or setting it came from).
pub fn check_admin_password(source_name: &'static str, password: &str) -> Result<(), BootstrapError> {
    let got = password.chars().count();
    let min = MIN_ADMIN_PASSWORD_CHARS;
    if got == 0 {
        return Err(BootstrapError::EmptyPassword { source_name, min });
    }
    if got < min {
        return Err(BootstrapError::ShortPassword { source_name, got, min });
    }
    Ok(())
}

/// `STOWAGE_ADMIN_PASSWORD`, checked: `None` when unset. It is checked on every start, not only
/// the first, so a bad value is noticed when it is set rather than when it would be used.
pub fn admin_password_from_env() -> Result<Option<String>, BootstrapError> {
    match std::env::var(ADMIN_PASSWORD_ENV) {
        Ok(p) => {
            check_admin_password(ADMIN_PASSWORD_ENV, &p)?;
            Ok(Some(p))
        }
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(BootstrapError::NotUnicode),
    }
}

/// Creates the data directory (mode 0700) or, when it exists with access for other local users,
/// takes that access away and says so in the log. Also creates `keys/` with mode 0700 before the
/// key store fills it.
pub fn prepare_data_dir(dir: &Path) -> Result<(), BootstrapError> {
    let err = |what, source| BootstrapError::DataDir { path: dir.to_path_buf(), what, source };
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => {
            return Err(err("exists but is not a directory", std::io::Error::other("not a directory")))
        }
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| err("cannot take away access for other users (chmod 0700)", e))?;
                tracing::warn!(
                    path = %dir.display(),
                    was = %format!("{mode:o}"),
                    "data directory was open to other local users; changed its mode to 700"
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| err("cannot create", e))?;
        }
        Err(e) => return Err(err("cannot read", e)),
    }
    let keys = dir.join("keys");
    if !keys.exists() {
        std::fs::DirBuilder::new().mode(0o700).create(&keys).map_err(|e| err("cannot create keys/", e))?;
    }
    Ok(())
}

/// Writes a generated password to `data_dir/admin-password` with mode 0600: written to a temp
/// file, fsynced and renamed, so the file is either whole or absent. Returns its path.
pub fn write_password_file(data_dir: &Path, password: &str) -> Result<PathBuf, BootstrapError> {
    let path = data_dir.join(ADMIN_PASSWORD_FILE);
    let tmp = data_dir.join(format!("{ADMIN_PASSWORD_FILE}.tmp"));
    let write = || -> std::io::Result<()> {
        // A leftover from an interrupted first start holds a password that was never used.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(password.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(data_dir)?.sync_all()
    };
    write().map_err(|source| BootstrapError::PasswordFile { path: path.clone(), source })?;
    Ok(path)
}

/// On first start (no users), creates `admin` with `password`, or with a generated one that is
/// written to [`ADMIN_PASSWORD_FILE`] in `data_dir` (its path is logged, the password never).
/// A given password must pass [`check_admin_password`].
pub async fn bootstrap_admin(
    store: &crate::access::store::Store,
    data_dir: &Path,
    password: Option<String>,
) -> anyhow::Result<()> {
    if let Some(p) = &password {
        check_admin_password("the admin password", p)?;
    }
    if !store.users()?.is_empty() {
        return Ok(());
    }
    let (password, generated) = match password {
        Some(p) => (p, false),
        None => (crate::auth::secrets::random_token::<18>(), true),
    };
    // The file comes first: if it cannot be written, no account exists whose password is lost.
    let file = if generated { Some(write_password_file(data_dir, &password)?) } else { None };
    let pw = password.clone();
    let hash = tokio::task::spawn_blocking(move || crate::auth::secrets::hash_password(&pw))
        .await?
        .map_err(anyhow::Error::msg)?;
    if store.create_user("admin", hash, true)?.is_none() {
        // Another start won the race and made the account: this password was never set.
        if let Some(f) = &file {
            let _ = std::fs::remove_file(f);
        }
        return Ok(());
    }
    match file {
        Some(f) => tracing::warn!(
            path = %f.display(),
            "created user admin with a generated password, in this file (mode 0600); read it, log in, change \
             the password and delete the file"
        ),
        None => tracing::info!("created user admin with the configured password"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_password_needs_twelve_characters() {
        let e = check_admin_password(ADMIN_PASSWORD_ENV, "").unwrap_err().to_string();
        assert!(e.contains("STOWAGE_ADMIN_PASSWORD is empty") && e.contains("at least 12 characters"), "{e}");
        let e = check_admin_password(ADMIN_PASSWORD_ENV, "elevenchars").unwrap_err().to_string();
        assert!(e.contains("is 11 characters long") && e.contains("at least 12 characters"), "{e}");
        assert!(check_admin_password(ADMIN_PASSWORD_ENV, "twelve-chars").is_ok());
        // Characters, not bytes.
        assert!(check_admin_password(ADMIN_PASSWORD_ENV, "ééééééééééé").is_err());
    }

    #[test]
    fn password_file_is_private_and_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_password_file(dir.path(), "first-secret-value").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "first-secret-value\n");
        // An interrupted first start left a temp file: it is replaced, not appended to.
        std::fs::write(dir.path().join("admin-password.tmp"), "stale").unwrap();
        write_password_file(dir.path(), "second-secret-value").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "second-secret-value\n");
        assert!(!dir.path().join("admin-password.tmp").exists());
    }

    #[test]
    fn data_dir_is_created_private_or_made_private() {
        let tmp = tempfile::tempdir().unwrap();
        let fresh = tmp.path().join("a/b");
        prepare_data_dir(&fresh).unwrap();
        for d in [&fresh, &fresh.join("keys")] {
            assert_eq!(std::fs::metadata(d).unwrap().permissions().mode() & 0o777, 0o700, "{}", d.display());
        }
        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare_data_dir(&open).unwrap();
        assert_eq!(std::fs::metadata(&open).unwrap().permissions().mode() & 0o777, 0o700);
    }
}
