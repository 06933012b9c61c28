//! The `stowage` command: `serve` runs the registry, `certs init` makes certificates for it,
//! `admin` drives a running one.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "stowage", version, about = "An on-prem container image registry")]
struct Cli {
    /// Log lines as human-readable text or one JSON object per line (`RUST_LOG` filters them).
    #[arg(long, global = true, value_enum, default_value = "text", env = "STOWAGE_LOG_FORMAT")]
    log_format: stowage::logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry (embedded defaults when no config file is given).
    Serve {
        /// Config file (TOML); see config.toml in the source tree for every key and its default.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (overrides server.listen).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory (overrides storage.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// PEM certificate chain for TLS (overrides server.tls_cert; needs --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for TLS (overrides server.tls_key; needs --tls-cert).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Certificates for a site without a PKI.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Administer a running registry through its REST API.
    Admin(stowage::cli::AdminArgs),
    /// Build a new data directory from a backup made with `stowage admin backup` (offline: run
    /// it before starting a server on DIR). Every blob is verified while it is copied.
    Restore {
        /// The backup directory.
        src: PathBuf,
        /// The data directory to create; must not exist or be empty.
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Make a local CA and a server certificate signed by it: DIR/ca.crt, ca.key, server.crt,
    /// server.key. Never overwrites existing files.
    Init {
        /// Directory to write the four files to (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// A DNS name or IP address clients use to reach the registry (repeat for more).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// The port clients use, for the client certificate paths printed at the end.
        #[arg(long, default_value_t = 5000)]
        port: u16,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    stowage::logging::init(cli.log_format);
    match cli.command {
        Command::Admin(a) => stowage::cli::run(a),
        Command::Certs(CertsCommand::Init { dir, hosts, port }) => {
            let made = stowage::certs::init(&dir, &hosts)?;
            print!("{}", stowage::certs::instructions(&made, &hosts, port));
            Ok(())
        }
        Command::Restore { src, data_dir } => {
            stowage::process::restrict_umask();
            let report = stowage_engine::backup::restore(&src, &data_dir)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            eprintln!(
                "restored {} blobs ({} bytes) and {} index records into {}; start the server with --data-dir {}",
                report.blobs,
                report.bytes,
                report.records,
                data_dir.display(),
                data_dir.display()
            );
            Ok(())
        }
        Command::Serve { config, listen, data_dir, tls_cert, tls_key } => {
            let mut cfg = match &config {
                Some(p) => stowage::config::Config::load(p)?,
                None => stowage::config::Config::default(),
            };
            if let Some(l) = listen {
                cfg.server.listen = l.to_string();
            }
            if let Some(d) = data_dir {
                cfg.storage.data_dir = d;
            }
            if let (Some(c), Some(k)) = (tls_cert, tls_key) {
                cfg.server.tls_cert = Some(c);
                cfg.server.tls_key = Some(k);
            }
            let mut settings = cfg.validate()?;
            // Before anything creates a file or starts a thread: see `restrict_umask`.
            stowage::process::restrict_umask();
            stowage::process::return_large_allocations();
            settings.admin_password = stowage::bootstrap::admin_password_from_env()?;
            match stowage::process::raise_fd_limit() {
                Ok(n) if n < settings.max_connections as u64 + 256 => tracing::warn!(
                    open_files = n,
                    max_connections = settings.max_connections,
                    "the open-file limit is below server.max_connections plus room for storage; \
                     raise it (ulimit -n, LimitNOFILE=) or lower max_connections"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the open-file limit"),
            }
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(settings.listen)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
                stowage::run(settings, listener, shutdown_signal()?).await
            })
        }
    }
}

/// SIGINT or SIGTERM. The handlers are installed here, before anything is served: a future that
/// installed them when first polled would leave a window in which SIGTERM still kills the process
/// outright (the accept loop need not poll it before answering the first request).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).map_err(|e| anyhow::anyhow!("cannot handle SIGINT: {e}"))?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| anyhow::anyhow!("cannot handle SIGTERM: {e}"))?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
    })
}
