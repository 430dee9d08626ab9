//! Finding a Redis for tests, or starting a private one.
//!
//! [`shared_redis_url`] answers, in order: `REDIS_URL`; `127.0.0.1:6379` if a
//! Redis answers `PING` there; a private `redis-server` started on a free
//! loopback port if the binary is installed. Otherwise it panics with how to
//! get one: Redis tests fail, they are never skipped.
//!
//! [`RedisServer::start`] always starts a private server, for tests that
//! kill it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const HOW_TO_GET_REDIS: &str = "no Redis for the tests: set REDIS_URL=redis://host:port, \
     run Redis on 127.0.0.1:6379, or install redis-server (Debian/Ubuntu: \
     apt-get install redis-server; macOS: brew install redis) so that the \
     tests can start a private one";

/// Whether a Redis answers `PING` at `addr` within a short timeout.
pub fn answers_ping(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

/// The URL of a Redis the tests of this process share (see the module docs).
pub fn shared_redis_url() -> &'static str {
    static URL: OnceLock<(String, Option<RedisServer>)> = OnceLock::new();
    &URL.get_or_init(|| {
        if let Ok(url) = std::env::var("REDIS_URL") {
            if !url.is_empty() {
                return (url, None);
            }
        }
        if answers_ping(SocketAddr::from(([127, 0, 0, 1], 6379))) {
            return ("redis://127.0.0.1:6379/".to_owned(), None);
        }
        let server = RedisServer::start();
        (server.url.clone(), Some(server))
    })
    .0
}

/// A private `redis-server` on a free loopback port, persisting nothing. It
/// stops when this value is dropped, or when the test process exits (a
/// watchdog shell kills it when its stdin closes).
pub struct RedisServer {
    /// `redis://127.0.0.1:<port>/`
    pub url: String,
    /// The loopback address it listens on.
    pub addr: SocketAddr,
    pid: u32,
    watchdog: Child,
    _stdin: ChildStdin,
}

impl RedisServer {
    /// Starts one; panics with installation help if `redis-server` is missing.
    pub fn start() -> RedisServer {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
            listener.local_addr().expect("local addr").port()
        };
        Self::start_on(port)
    }

    /// Kills the server (if it runs) and starts a new, empty one on the same
    /// port: Redis coming back after an outage.
    pub fn restart(&mut self) {
        self.kill();
        // dropping the old value stops its watchdog shell
        *self = Self::start_on(self.addr.port());
    }

    fn start_on(port: u16) -> RedisServer {
        let script = format!(
            "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no \
             --daemonize no --loglevel warning >/dev/null 2>&1 & pid=$!; echo $pid; \
             read _; kill -9 $pid 2>/dev/null"
        );
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            panic!("{HOW_TO_GET_REDIS}");
        }
        let mut watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh to start redis-server");
        let stdin = watchdog.stdin.take().expect("piped stdin");
        let mut line = String::new();
        BufReader::new(watchdog.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("redis-server pid");
        let pid: u32 = line.trim().parse().expect("redis-server pid");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        while !answers_ping(addr) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not answer on {addr} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer {
            url: format!("redis://{addr}/"),
            addr,
            pid,
            watchdog,
            _stdin: stdin,
        }
    }

    /// Kills the server at once (`SIGKILL`: no goodbye to clients).
    pub fn kill(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.pid.to_string()])
            .status();
        let started = Instant::now();
        while answers_ping(self.addr) && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.pid.to_string()])
            .status();
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}
