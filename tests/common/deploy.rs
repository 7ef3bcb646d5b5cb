//! Real Redis deployments on loopback for the tests: a primary with replicas watched by three
//! sentinels, and a cluster of three primaries, each on free ports and in a directory of its
//! own. Every server runs under a small shell watchdog that kills it when the test process is
//! gone, so a deployment shared by a whole test binary (a `static`) does not outlive it.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use moderation::store::redis::{RedisSettings, RedisUrl};

/// The name the sentinels monitor the primary under.
pub const MASTER: &str = "moderation";

/// One redis-server process (a data node or a sentinel).
pub struct Node {
    /// Its port.
    pub port: u16,
    args: Vec<String>,
    dir: std::path::PathBuf,
    watchdog: Option<Child>,
    pid: Option<u32>,
    /// Its `requirepass`, when it has one.
    password: Option<String>,
}

impl Node {
    /// Starts `redis-server` on `port` with `args` (after the common ones) and waits until it
    /// answers PING.
    pub fn start(port: u16, args: &[String]) -> Node {
        Self::start_with_password(port, args, None)
    }

    /// [`Node::start`], for a node that asks for `password` (its `requirepass`, which `args`
    /// or its configuration file set).
    pub fn start_with_password(port: u16, args: &[String], password: Option<&str>) -> Node {
        let dir =
            std::env::temp_dir().join(format!("moderation-deploy-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut node = Node {
            port,
            args: args.to_vec(),
            dir,
            watchdog: None,
            pid: None,
            password: password.map(str::to_owned),
        };
        node.restart();
        node
    }

    /// Whether its arguments give a port of their own (`--port 0` and a `--tls-port`: a node
    /// that speaks TLS only, which the test waits for with its own client).
    fn own_port(&self) -> bool {
        self.args.iter().any(|a| a == "--port")
    }

    fn listen(&self) -> Vec<String> {
        match self.own_port() {
            true => strings(&["--bind", "127.0.0.1"]),
            false => strings(&["--port", &self.port.to_string(), "--bind", "127.0.0.1"]),
        }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// A connection to it.
    pub fn connection(&self) -> redis::Connection {
        let client = redis::Client::open(self.url()).unwrap();
        client
            .get_connection_with_timeout(Duration::from_secs(2))
            .unwrap()
    }

    /// Kills it at once (SIGKILL, as a crash would): its port refuses connections.
    pub fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.wait();
        }
    }

    /// Starts it again on the same port, with the same arguments and directory.
    pub fn restart(&mut self) {
        self.kill();
        // The watchdog prints the server's pid, then waits while both the server and the test
        // process live; whichever ends first, the server is killed.
        let script = r#"redis-server "$@" >"$LOG" 2>&1 & s=$!; echo $s
            while kill -0 "$WATCHED" 2>/dev/null && kill -0 $s 2>/dev/null; do sleep 0.3; done
            kill -9 $s 2>/dev/null
            kill -0 "$WATCHED" 2>/dev/null || rm -rf "$DIR"; true"#;
        let mut child = Command::new("bash")
            .args(["-c", script, "redis-server"])
            .args(&self.args)
            .args(self.listen())
            .args(["--dir", self.dir.to_str().unwrap()])
            .env("WATCHED", std::process::id().to_string())
            .env("LOG", self.dir.join("redis.log"))
            .env("DIR", &self.dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("bash and redis-server are installed (scripts/test installs redis-server)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        self.pid = Some(line.trim().parse().expect("the watchdog prints the pid"));
        self.watchdog = Some(child);
        if self.own_port() {
            return; // the test waits for it, with its own TLS client
        }
        let client = redis::Client::open(self.url()).unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200))
                && redis::cmd("PING").query::<String>(&mut conn).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "redis-server {:?} did not start on port {}",
            self.args, self.port
        );
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The arguments that make a server listen with TLS on `port`, with `node.pem`, `node.key`
/// and `ca.pem` of `pki` (clients are not asked for certificates).
pub fn tls_args(pki: &std::path::Path, port: u16) -> Vec<String> {
    let file = |name: &str| pki.join(name).to_str().unwrap().to_owned();
    let port = port.to_string();
    strings(&[
        "--tls-port",
        &port,
        "--tls-cert-file",
        &file("node.pem"),
        "--tls-key-file",
        &file("node.key"),
        "--tls-ca-cert-file",
        &file("ca.pem"),
        "--tls-auth-clients",
        "no",
    ])
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// What data nodes share: no snapshots, an append-only file fsynced every second, and
/// replication that starts at once.
fn data_node(extra: &[&str]) -> Vec<String> {
    let mut args = strings(&[
        "--save",
        "",
        "--appendonly",
        "yes",
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ]);
    args.extend(strings(extra));
    args
}

/// A primary, its replicas, and three sentinels (quorum 2, a node is down after 1 s
/// unanswered).
pub struct SentinelSet {
    /// The primary it started with.
    pub primary: Node,
    /// Its replicas.
    pub replicas: Vec<Node>,
    /// The sentinels.
    pub sentinels: Vec<Node>,
    /// The sentinels' TLS ports, when they listen with TLS too.
    pub tls_ports: Vec<u16>,
}

impl SentinelSet {
    /// Starts one with `replicas` replicas, and waits until every sentinel sees the replicas
    /// and the other sentinels (so that a failover can be agreed on).
    pub fn start(replicas: usize) -> SentinelSet {
        Self::start_with_passwords(replicas, None, None)
    }

    /// [`SentinelSet::start`], with `data` as the data nodes' password (`requirepass`,
    /// `masterauth`, the sentinels' `auth-pass`) and `sentinel` as the sentinels' own.
    pub fn start_with_passwords(
        replicas: usize,
        data: Option<&str>,
        sentinel: Option<&str>,
    ) -> SentinelSet {
        Self::start_with(replicas, data, sentinel, None)
    }

    /// [`SentinelSet::start`], the sentinels also listening with TLS (on
    /// [`SentinelSet::tls_ports`]) with `node.pem`, `node.key` and `ca.pem` of `pki`.
    pub fn start_with_tls(replicas: usize, pki: &std::path::Path) -> SentinelSet {
        Self::start_with(replicas, None, None, Some(pki))
    }

    fn start_with(
        replicas: usize,
        data: Option<&str>,
        sentinel: Option<&str>,
        pki: Option<&std::path::Path>,
    ) -> SentinelSet {
        let auth: Vec<&str> = match data {
            Some(pw) => vec!["--requirepass", pw, "--masterauth", pw],
            None => Vec::new(),
        };
        let primary = Node::start_with_password(super::free_port(), &data_node(&auth), data);
        let p = primary.port.to_string();
        let replicas: Vec<Node> = (0..replicas)
            .map(|_| {
                let mut args = vec!["--replicaof", "127.0.0.1", &p];
                args.extend(&auth);
                Node::start_with_password(super::free_port(), &data_node(&args), data)
            })
            .collect();
        let mut extra = String::new();
        if let Some(pw) = data {
            extra += &format!("sentinel auth-pass {MASTER} {pw}\n");
        }
        if let Some(pw) = sentinel {
            extra += &format!("requirepass {pw}\nsentinel sentinel-pass {pw}\n");
        }
        let mut tls_ports = Vec::new();
        let sentinels = (0..3)
            .map(|_| {
                let port = super::free_port();
                let dir = std::env::temp_dir()
                    .join(format!("moderation-deploy-{}-{port}", std::process::id()));
                std::fs::create_dir_all(&dir).unwrap();
                let conf = dir.join("sentinel.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "sentinel monitor {MASTER} 127.0.0.1 {p} 2\n\
                         sentinel down-after-milliseconds {MASTER} 1000\n\
                         sentinel failover-timeout {MASTER} 5000\n\
                         sentinel parallel-syncs {MASTER} 1\n{extra}"
                    ),
                )
                .unwrap();
                let mut args = vec![conf.to_str().unwrap().to_owned(), "--sentinel".to_owned()];
                if let Some(pki) = pki {
                    let tls_port = super::free_port();
                    tls_ports.push(tls_port);
                    args.extend(tls_args(pki, tls_port));
                }
                Node::start_with_password(port, &args, sentinel)
            })
            .collect();
        let set = SentinelSet {
            primary,
            replicas,
            sentinels,
            tls_ports,
        };
        set.wait_until_watched();
        set
    }

    /// Waits (30 s at most) until each sentinel knows the replicas and the other sentinels.
    pub fn wait_until_watched(&self) {
        let wanted = self.replicas.len().to_string();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            let ready = self.sentinels.iter().all(|s| {
                let fields: Vec<String> = redis::cmd("SENTINEL")
                    .arg("MASTER")
                    .arg(MASTER)
                    .query(&mut s.connection())
                    .unwrap_or_default();
                let field = |name: &str| {
                    let at = fields.iter().position(|f| f == name)?;
                    fields.get(at + 1).cloned()
                };
                field("num-slaves").as_deref() == Some(wanted.as_str())
                    && field("num-other-sentinels").as_deref() == Some("2")
            });
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the sentinels did not come to watch the primary and its replicas in 30 s");
    }

    /// The sentinels' addresses, as `redis.sentinels` takes them.
    pub fn addresses(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect()
    }

    /// Where the sentinels say the primary is now (port).
    pub fn primary_port(&self) -> Option<u16> {
        named_primary(&self.sentinel_ports())
    }

    /// The sentinels' ports.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|s| s.port).collect()
    }

    /// Settings of a store on this deployment, under `prefix`.
    pub fn settings(&self, prefix: &str) -> RedisSettings {
        RedisSettings {
            sentinels: self.addresses(),
            sentinel_master: MASTER.to_owned(),
            prefix: prefix.to_owned(),
            // Only the sentinels say where the primary is: a store that used this address
            // would reach nothing.
            url: RedisUrl::new("redis://127.0.0.1:1"),
            ..RedisSettings::default()
        }
    }

    /// Every data node's URL (for clean-up).
    pub fn urls(&self) -> Vec<String> {
        std::iter::once(&self.primary)
            .chain(&self.replicas)
            .map(Node::url)
            .collect()
    }
}

/// Where the first of the sentinels at `ports` that answers says the primary is (port).
pub fn named_primary(ports: &[u16]) -> Option<u16> {
    ports.iter().find_map(|port| {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
        let mut connection = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        let reply: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(MASTER)
            .query(&mut connection)
            .ok()?;
        reply.map(|(_, port)| port)
    })
}

/// A Redis Cluster of three primaries without replicas, the 16,384 slots split evenly.
pub struct ClusterSet {
    /// Its nodes.
    pub nodes: Vec<Node>,
}

impl ClusterSet {
    /// Starts one and waits until every node says the cluster is ok.
    pub fn start() -> ClusterSet {
        let nodes: Vec<Node> = (0..3)
            .map(|_| {
                let args =
                    data_node(&["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]);
                Node::start(super::free_port(), &args)
            })
            .collect();
        let ranges = [(0, 5460), (5461, 10922), (10923, 16383)];
        for (node, (from, to)) in nodes.iter().zip(ranges) {
            let _: () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(from)
                .arg(to)
                .query(&mut node.connection())
                .unwrap();
        }
        for other in &nodes[1..] {
            let _: () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(other.port)
                .query(&mut nodes[0].connection())
                .unwrap();
        }
        let set = ClusterSet { nodes };
        set.wait_until_ok();
        set
    }

    fn wait_until_ok(&self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            let ok = self.nodes.iter().all(|n| {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut n.connection())
                    .unwrap_or_default();
                info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")
            });
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the cluster did not come up in 30 s");
    }

    /// Settings of a store on this cluster, under `prefix` (which must hold a hash tag).
    pub fn settings(&self, prefix: &str) -> RedisSettings {
        RedisSettings {
            cluster_nodes: self
                .nodes
                .iter()
                .map(|n| format!("127.0.0.1:{}", n.port))
                .collect(),
            prefix: prefix.to_owned(),
            // The cluster says where its slots are: nothing listens here.
            url: RedisUrl::new("redis://127.0.0.1:1"),
            ..RedisSettings::default()
        }
    }

    /// Every node's URL (for clean-up).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }
}

/// A Sentinel deployment (one replica) shared by the tests of one test binary.
pub fn shared_sentinel() -> &'static SentinelSet {
    static SET: OnceLock<SentinelSet> = OnceLock::new();
    SET.get_or_init(|| SentinelSet::start(1))
}

/// A cluster shared by the tests of one test binary.
pub fn shared_cluster() -> &'static ClusterSet {
    static SET: OnceLock<ClusterSet> = OnceLock::new();
    SET.get_or_init(ClusterSet::start)
}
