//! Throwaway database servers for the fault tests: a PostgreSQL cluster
//! (`initdb`, `pg_ctl`) and a MariaDB server (`mariadb-install-db`,
//! `mariadbd`), each in a temporary directory on a free port, so that tests
//! can kill and restart them without touching the shared servers. Dropped,
//! they stop and their directories go.
//!
//! They need the servers' binaries (Debian's `postgresql` and
//! `mariadb-server` packages, which `.ci/run` expects); without them a
//! test fails saying so. Run as root (as CI does), PostgreSQL runs as the
//! `postgres` user and MariaDB with `--user=root`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program` run as `user` when this process is root.
fn command_as(user: &str, program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", user, "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Runs `program` as `user` (see [`command_as`]) and fails the test with
/// its output if it fails.
fn run_as(user: &str, program: &Path, args: &[&str]) {
    let out = command_as(user, program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until `port` accepts connections, up to 60 s.
fn wait_for_port(port: u16, what: &str) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} did not listen on port {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A PostgreSQL cluster of its own.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

impl Postgres {
    /// `initdb` (trust authentication, user `postgres`) and start.
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions
                    .filter_map(|v| Some(v.ok()?.path().join("bin")))
                    .find(|bin| bin.join("initdb").exists())
            })
            .expect(
                "no initdb under /usr/lib/postgresql/*/bin: the fault tests start their own \
                 PostgreSQL (install Debian's postgresql package)",
            );
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let owner = Command::new("id")
                .args(["-u", "postgres"])
                .output()
                .unwrap();
            let uid: u32 = String::from_utf8_lossy(&owner.stdout)
                .trim()
                .parse()
                .unwrap();
            std::os::unix::fs::chown(dir.path(), Some(uid), None).unwrap();
        }
        let data = dir.path().join("data");
        run_as(
            "postgres",
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        let server = Postgres {
            dir,
            bin,
            port: free_port(),
        };
        server.start_again();
        server
    }

    /// A URL for database `postgres` with `parameters`.
    pub fn url(&self, parameters: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres{parameters}",
            self.port
        )
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.path().join("data");
        let mut all = vec!["-D", data.to_str().unwrap()];
        all.extend_from_slice(args);
        run_as("postgres", &self.bin.join("pg_ctl"), &all);
    }

    /// Starts the server (again), waiting until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log");
        self.pg_ctl(&["-l", log.to_str().unwrap(), "-o", &options, "-w", "start"]);
        wait_for_port(self.port, "PostgreSQL");
    }

    /// Stops it as a crash does: every backend quits at once, nothing is
    /// flushed (`pg_ctl stop -m immediate`).
    pub fn crash(&self) {
        self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
    }

    /// A client of its own, for setting up and checking.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(""), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = command_as("postgres", &self.bin.join("pg_ctl"))
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A MariaDB server of its own.
pub struct Mariadb {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Mutex<Option<Child>>,
}

impl Mariadb {
    /// `mariadb-install-db` (root without a password) and start.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut args = vec![
            "--no-defaults".to_string(),
            format!("--datadir={}", data.display()),
            "--auth-root-authentication-method=normal".to_string(),
            "--skip-test-db".to_string(),
        ];
        if is_root() {
            args.push("--user=root".to_string());
        }
        let out = Command::new("mariadb-install-db")
            .args(&args)
            .output()
            .expect(
                "no mariadb-install-db: the fault tests start their own MariaDB (install \
                 Debian's mariadb-server package)",
            );
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let server = Mariadb {
            dir,
            port: free_port(),
            child: Mutex::new(None),
        };
        server.start_again();
        server
    }

    /// A URL for database `db` with `parameters`.
    pub fn url(&self, db: &str, parameters: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{db}{parameters}", self.port)
    }

    /// Starts the server (again), waiting until it accepts connections.
    pub fn start_again(&self) {
        let d = self.dir.path();
        let mut command = Command::new("/usr/sbin/mariadbd");
        command.args([
            "--no-defaults".to_string(),
            format!("--datadir={}", d.join("data").display()),
            format!("--port={}", self.port),
            "--bind-address=127.0.0.1".to_string(),
            format!("--socket={}", d.join("sock").display()),
            format!("--pid-file={}", d.join("pid").display()),
            // Each commit reaches the OS: a killed server keeps it.
            "--innodb-flush-log-at-trx-commit=2".to_string(),
            "--max-connections=100".to_string(),
        ]);
        if is_root() {
            command.arg("--user=root");
        }
        let log = std::fs::File::create(d.join("log")).unwrap();
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("/usr/sbin/mariadbd runs");
        *self.child.lock().unwrap() = Some(child);
        wait_for_port(self.port, "MariaDB");
    }

    /// Kills the server (SIGKILL): a crash.
    pub fn crash(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Until the port is free, a restart could not listen on it.
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            && start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A connection of its own, for setting up and checking.
    pub async fn conn(&self, db: &str) -> mysql_async::Conn {
        mysql_async::Conn::new(mysql_async::Opts::from_url(&self.url(db, "")).unwrap())
            .await
            .unwrap()
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        self.crash();
    }
}
