//! The deployment files of `deploy/`: the Helm chart `deploy/helm/tributary` and the Dockerfile.
//!
//! The chart is linted and rendered by Helm's own Go library (the `helm-python-sdk` wheel, driven by
//! `compat-tests/deploy/render_chart.py`) with its default values and with overrides, and every
//! rendered object is validated against the Kubernetes API schemas of an old and the newest
//! version (`kubernetes-validate`, strict: an unknown field is an error). The tests then
//! check what the objects say (roles, config.toml, secrets kept out of ConfigMaps, probes, drain
//! on SIGTERM, non-root pods), and run a coordinator and a worker of the built binary from the
//! rendered ConfigMaps, Secrets and pod environment, as the kubelet would lay them out.
//! `scripts/deps/helm.sh` installs both Python packages; a missing one fails the tests.
//!
//! The Dockerfile is checked as text against the chart (user, ports, config directory); it is
//! built and run only where `docker info` answers (the test says when it skips that part).

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use compat_tests::{TempDir, Tributary, free_port, tail, workspace_root};
use serde_json::{Value, json};
use tributary_testkit::cleanup;

const RELEASE: &str = "demo";
const NAMESPACE: &str = "data";
/// Kubernetes versions every rendered object must be valid for: an old one still in service and
/// the newest `kubernetes-validate` knows.
const KUBE_VERSIONS: [&str; 2] = ["1.28", "1.37"];
/// The server image's user (deploy/Dockerfile) and the chart's `runAsUser`.
const IMAGE_UID: u64 = 10001;

fn chart_dir() -> PathBuf {
    workspace_root().join("deploy/helm/tributary")
}

/// `$HELM_PYTHON` (exported by scripts/deps/helm.sh), else the venv scripts/test.sh creates.
fn helm_python() -> PathBuf {
    std::env::var_os("HELM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| compat_tests::target_dir().join("test-tools/venv/bin/python"))
}

/// The chart rendered by Helm: its objects, the decoded data of its Secrets and NOTES.txt.
struct Rendered {
    objects: Vec<Value>,
    secrets: serde_json::Map<String, Value>,
    notes: String,
}

/// Lints and renders the chart with `values` (over the defaults), asserting that lint reports no
/// warning or error and that every object is valid for [`KUBE_VERSIONS`].
fn render(values: &Value) -> Rendered {
    let dir = TempDir::new("chart-values");
    let values_file = dir.write("values.json", values.to_string());
    let python = helm_python();
    let output = Command::new(&python)
        .arg(workspace_root().join("compat-tests/deploy/render_chart.py"))
        .arg(chart_dir())
        .arg(&values_file)
        .args([RELEASE, NAMESPACE])
        .args(KUBE_VERSIONS)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): run scripts/test.sh (scripts/deps/helm.sh installs \
                 helm-python-sdk and kubernetes-validate into target/test-tools/venv) or set HELM_PYTHON",
                python.display()
            )
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "render_chart.py failed ({}); if helm_python or kubernetes_validate is missing, run \
         scripts/test.sh (scripts/deps/helm.sh installs them):\n{stderr}",
        output.status
    );
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("render_chart.py printed no JSON ({e}); stderr:\n{stderr}"));
    let lint = &report["lint"];
    assert_eq!(lint["errors"], json!([]), "helm lint errors: {lint}");
    let findings: Vec<&Value> = lint["messages"]
        .as_array()
        .expect("lint messages")
        .iter()
        .filter(|m| m["severity"].as_u64().unwrap_or(0) >= 2)
        .collect();
    assert!(findings.is_empty(), "helm lint warnings: {findings:?}");
    assert_eq!(
        report["invalid"],
        json!([]),
        "objects the Kubernetes schemas refuse"
    );
    let objects: Vec<Value> = report["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| o["object"].clone())
        .collect();
    Rendered {
        objects,
        secrets: report["secrets"].as_object().cloned().unwrap_or_default(),
        notes: report["notes"].as_str().unwrap_or_default().to_string(),
    }
}

impl Rendered {
    fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    }

    fn get(&self, kind: &str, name: &str) -> &Value {
        self.find(kind, name).unwrap_or_else(|| {
            let all: Vec<String> = self
                .objects
                .iter()
                .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
                .collect();
            panic!("no {kind}/{name} rendered; objects: {all:?}")
        })
    }

    fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    /// The Deployment of `role` ("coordinator" or "worker").
    fn deployment(&self, role: &str) -> &Value {
        self.get("Deployment", &format!("{RELEASE}-tributary-{role}"))
    }

    fn pod_spec(&self, role: &str) -> &Value {
        &self.deployment(role)["spec"]["template"]["spec"]
    }

    fn container(&self, role: &str) -> &Value {
        &self.pod_spec(role)["containers"][0]
    }

    /// config.toml of `role`, from its ConfigMap.
    fn config_toml(&self, role: &str) -> &str {
        self.get("ConfigMap", &format!("{RELEASE}-tributary-{role}"))["data"]["config.toml"]
            .as_str()
            .expect("config.toml in the role's ConfigMap")
    }

    /// Key `key` of Secret `name`, decoded.
    fn secret(&self, name: &str, key: &str) -> &str {
        self.secrets
            .get(name)
            .and_then(|s| s.get(key))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no key {key} in Secret {name}: {:?}", self.secrets.keys()))
    }

    /// The environment variable `name` of `role`'s container.
    fn env(&self, role: &str, name: &str) -> &Value {
        self.container(role)["env"]
            .as_array()
            .and_then(|env| env.iter().find(|e| e["name"] == name))
            .unwrap_or_else(|| panic!("{role} has no environment variable {name}"))
    }
}

/// `[section] key = value` lines of a rendered config.toml, checked as text.
fn assert_config_has(config: &str, section: &str, line: &str) {
    let body = config
        .split("\n[")
        .map(|s| s.trim_start_matches('['))
        .find(|s| s.starts_with(&format!("{section}]")))
        .unwrap_or_else(|| panic!("no [{section}] in config.toml:\n{config}"));
    assert!(
        body.lines().any(|l| l.trim() == line),
        "[{section}] lacks `{line}`:\n{config}"
    );
}

fn shutdown_timeout_ms(config: &str) -> u64 {
    config
        .lines()
        .find_map(|l| l.trim().strip_prefix("shutdown_timeout_ms = "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no shutdown_timeout_ms in config.toml:\n{config}"))
}

/// What every pod of the chart must have: the probes on its own port, the preStop sleep and a
/// grace period longer than the drain, a non-root read-only container, the config directory
/// where the image's entrypoint reads it, and the node secret from a Secret.
fn assert_pods_are_operable(rendered: &Rendered) {
    for (role, probe_port) in [("coordinator", "pgwire"), ("worker", "rpc")] {
        let pod = rendered.pod_spec(role);
        let container = rendered.container(role);
        let ports: Vec<&Value> = container["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .map(|p| &p["name"])
            .collect();
        for probe in ["livenessProbe", "readinessProbe"] {
            assert_eq!(
                container[probe]["tcpSocket"]["port"], probe_port,
                "{role} {probe}: {}",
                container[probe]
            );
        }
        assert!(
            ports.contains(&&json!(probe_port)),
            "{role} ports: {ports:?}"
        );
        let pre_stop = &container["lifecycle"]["preStop"]["exec"]["command"];
        assert_eq!(pre_stop[0], "sleep", "{role} preStop: {pre_stop}");
        let sleep_s: u64 = pre_stop[1]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("sleep seconds");
        let grace = pod["terminationGracePeriodSeconds"]
            .as_u64()
            .expect("grace period");
        let drain_s = shutdown_timeout_ms(rendered.config_toml(role)).div_ceil(1000);
        assert!(
            grace > sleep_s + drain_s,
            "{role}: terminationGracePeriodSeconds {grace} <= preStop {sleep_s} s + drain {drain_s} s"
        );
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{role}");
        assert_eq!(pod["securityContext"]["runAsUser"], IMAGE_UID, "{role}");
        let security = &container["securityContext"];
        assert_eq!(security["allowPrivilegeEscalation"], false, "{role}");
        assert_eq!(security["readOnlyRootFilesystem"], true, "{role}");
        let mounts = container["volumeMounts"].as_array().expect("mounts");
        for path in ["/etc/tributary", "/tmp"] {
            assert!(
                mounts.iter().any(|m| m["mountPath"] == path),
                "{role} mounts nothing at {path}: {mounts:?}"
            );
        }
        let secret = &rendered.env(role, "TRIBUTARY_SHARED_SECRET")["valueFrom"]["secretKeyRef"];
        assert!(
            secret.is_object(),
            "{role}: the shared secret is not from a Secret"
        );
        assert_config_has(
            rendered.config_toml(role),
            "node",
            "shared_secret = \"${TRIBUTARY_SHARED_SECRET}\"",
        );
    }
}

/// Asserts that no ConfigMap and no Deployment (env values, args) holds `secret`.
fn assert_only_in_secrets(rendered: &Rendered, secret: &str) {
    for kind in ["ConfigMap", "Deployment", "Service", "ServiceAccount"] {
        for object in rendered.all(kind) {
            assert!(
                !object.to_string().contains(secret),
                "{kind}/{} shows a secret value",
                object["metadata"]["name"]
            );
        }
    }
}

#[test]
fn default_values_render_a_coordinator_and_workers() {
    let rendered = render(&json!({}));
    let coordinator = rendered.deployment("coordinator");
    assert_eq!(coordinator["spec"]["replicas"], 1);
    assert_eq!(coordinator["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(rendered.deployment("worker")["spec"]["replicas"], 2);
    assert!(rendered.all("HorizontalPodAutoscaler").is_empty());

    let clients = rendered.get("Service", &format!("{RELEASE}-tributary"));
    assert_eq!(clients["spec"]["ports"][0]["targetPort"], "pgwire");
    assert_eq!(clients["spec"]["ports"].as_array().map(Vec::len), Some(1));
    let rpc = rendered.get("Service", &format!("{RELEASE}-tributary-coordinator"));
    assert_eq!(rpc["spec"]["type"], "ClusterIP");
    assert_eq!(rpc["spec"]["ports"][0]["targetPort"], "rpc");

    let config = rendered.config_toml("coordinator");
    assert_config_has(config, "node", "role = \"coordinator\"");
    assert_config_has(config, "server", "listen = \"0.0.0.0:7432\"");
    assert_config_has(config, "auth", "method = \"scram-sha-256\"");
    assert_config_has(config, "auth", "users_file = \"users.toml\"");
    assert_config_has(config, "query", "retry_policy = \"NONE\"");
    let config = rendered.config_toml("worker");
    assert_config_has(config, "node", "role = \"worker\"");
    assert_config_has(config, "node", "id = \"${POD_NAME}\"");
    assert_config_has(
        config,
        "node",
        &format!("coordinator = \"{RELEASE}-tributary-coordinator:7500\""),
    );
    assert_config_has(config, "node", "rpc_listen = \"${POD_IP}:7500\"");
    for section in ["[server]", "[auth]", "[tls]"] {
        assert!(
            !config.contains(section),
            "a worker config with {section}:\n{config}"
        );
    }

    assert_pods_are_operable(&rendered);
    let secret = rendered.secret(&format!("{RELEASE}-tributary"), "shared-secret");
    assert!(
        secret.len() >= 32,
        "generated shared secret too short: {} chars",
        secret.len()
    );
    assert_only_in_secrets(&rendered, secret);
    assert!(
        rendered.notes.contains("nobody can log in"),
        "NOTES.txt does not warn about an empty users file:\n{}",
        rendered.notes
    );
}

#[test]
fn task_retries_on_an_s3_spool_and_catalog_passwords_stay_in_secrets() {
    let catalog = "connector = \"postgres\"\nhost = \"postgres.shop.svc\"\nport = 5432\n\
                   database = \"shop\"\nuser = \"tributary\"\npassword = \"${SHOP_PG_PASSWORD}\"";
    let rendered = render(&json!({
        "config": {
            "query": {"retry_policy": "TASK", "task_retry_attempts_per_task": 2},
            "exchange": {
                "base_directories": ["s3://tributary-spool/exchange"],
                "endpoint": "http://minio.storage:9000",
                "region": "eu-west-1",
            },
        },
        "spool": {"credentials": {"accessKeyId": "AKIASPOOLKEY", "secretAccessKey": "spool-s3cr3t-key"}},
        "worker": {"replicas": 3, "resources": {"requests": {"cpu": "2", "memory": "8Gi"}}},
        "catalogs": {"shop": catalog},
        "secretEnv": {"SHOP_PG_PASSWORD": "pg-s3cr3t-pw"},
        "sharedSecret": {"value": "cluster-s3cr3t-value"},
        "auth": {"users": [{"name": "alice", "passwordHash": "SCRAM-SHA-256-SALTED$4096:c2FsdA==$AAAA"}]},
    }));
    assert_eq!(rendered.deployment("worker")["spec"]["replicas"], 3);
    for role in ["coordinator", "worker"] {
        let config = rendered.config_toml(role);
        assert_config_has(config, "query", "retry_policy = \"TASK\"");
        assert_config_has(config, "query", "task_retry_attempts_per_task = 2");
        assert_config_has(
            config,
            "exchange",
            "base_directories = [\"s3://tributary-spool/exchange\"]",
        );
        assert_config_has(
            config,
            "exchange",
            "endpoint = \"http://minio.storage:9000\"",
        );
        assert_config_has(
            config,
            "exchange",
            "secret_access_key = \"${TRIBUTARY_SPOOL_SECRET_ACCESS_KEY}\"",
        );
        // Every node mounts the catalog and gets its password from the Secret.
        let volumes = rendered.pod_spec(role)["volumes"].to_string();
        assert!(
            volumes.contains("\"path\":\"catalog/shop.toml\""),
            "{role} does not mount catalog/shop.toml: {volumes}"
        );
        assert_eq!(
            rendered.env(role, "SHOP_PG_PASSWORD")["valueFrom"]["secretKeyRef"],
            json!({"name": format!("{RELEASE}-tributary"), "key": "env.SHOP_PG_PASSWORD"})
        );
    }
    let catalogs = rendered.get("ConfigMap", &format!("{RELEASE}-tributary-catalogs"));
    assert_eq!(
        catalogs["data"]["shop.toml"].as_str().map(str::trim),
        Some(catalog)
    );

    let secret = format!("{RELEASE}-tributary");
    assert_eq!(
        rendered.secret(&secret, "env.SHOP_PG_PASSWORD"),
        "pg-s3cr3t-pw"
    );
    assert_eq!(
        rendered.secret(&secret, "spool-secret-access-key"),
        "spool-s3cr3t-key"
    );
    assert_eq!(
        rendered.secret(&secret, "shared-secret"),
        "cluster-s3cr3t-value"
    );
    assert!(
        rendered
            .secret(&secret, "users.toml")
            .contains("name = \"alice\"")
    );
    for value in [
        "pg-s3cr3t-pw",
        "spool-s3cr3t-key",
        "AKIASPOOLKEY",
        "cluster-s3cr3t-value",
        "c2FsdA==",
    ] {
        assert_only_in_secrets(&rendered, value);
    }
    assert_pods_are_operable(&rendered);
}

#[test]
fn autoscaled_workers_leave_their_replica_count_to_the_hpa() {
    let rendered = render(&json!({
        "worker": {
            "autoscaling": {"enabled": true, "minReplicas": 2, "maxReplicas": 6},
            "resources": {"requests": {"cpu": "1"}},
        },
        "shutdownTimeoutMs": 60000,
    }));
    let worker = rendered.deployment("worker");
    assert!(
        worker["spec"].get("replicas").is_none(),
        "the worker Deployment sets replicas beside an HPA: {}",
        worker["spec"]
    );
    let hpa = rendered.get(
        "HorizontalPodAutoscaler",
        &format!("{RELEASE}-tributary-worker"),
    );
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        worker["metadata"]["name"]
    );
    assert_eq!(hpa["spec"]["maxReplicas"], 6);
    assert_eq!(shutdown_timeout_ms(rendered.config_toml("worker")), 60_000);
    assert_pods_are_operable(&rendered);
}

/// A `tributary` process started the way the kubelet starts the chart's container: the config
/// directory laid out from the pod's projected volume, the environment from its env entries.
struct Pod {
    name: String,
    child: Child,
    log: PathBuf,
    watchdog: Child,
    kill_command: String,
    _dir: TempDir,
}

impl Pod {
    /// Lays out `role`'s /etc/tributary in a scratch directory and starts the binary on it with
    /// the pod's environment (status.podIP = `pod_ip`, metadata.name = `name`) and `args`, then
    /// waits until `ready` accepts connections.
    fn start(
        rendered: &Rendered,
        role: &str,
        name: &str,
        pod_ip: &str,
        args: &[&str],
        ready: SocketAddr,
    ) -> Pod {
        let dir = TempDir::new("pod");
        let config_dir = dir.path().join("etc");
        let pod = rendered.pod_spec(role);
        let volume = pod["volumes"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["name"] == "config"))
            .expect("config volume");
        for source in volume["projected"]["sources"]
            .as_array()
            .expect("projected sources")
        {
            for item in source.as_object().into_iter().flat_map(|s| s.iter()) {
                let (kind, projection) = item;
                let name = projection["name"].as_str().expect("source name");
                for entry in projection["items"].as_array().expect("items") {
                    let key = entry["key"].as_str().expect("item key");
                    let text = match kind.as_str() {
                        "configMap" => rendered.get("ConfigMap", name)["data"][key]
                            .as_str()
                            .unwrap_or_else(|| panic!("ConfigMap {name} has no key {key}"))
                            .to_string(),
                        "secret" => rendered.secret(name, key).to_string(),
                        other => panic!("unexpected projected source {other}"),
                    };
                    let path = config_dir.join(entry["path"].as_str().expect("item path"));
                    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                    std::fs::write(&path, text).expect("write projected file");
                }
            }
        }
        let log = dir.path().join("log");
        let out = File::create(&log).expect("log file");
        let mut command = Command::new(Tributary::binary());
        command
            .arg("--config")
            .arg(&config_dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out);
        for entry in rendered.container(role)["env"].as_array().expect("env") {
            let var = entry["name"].as_str().expect("env name");
            let value = if let Some(value) = entry["value"].as_str() {
                value.to_string()
            } else if let Some(field) = entry["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                match field {
                    "status.podIP" => pod_ip.to_string(),
                    "metadata.name" => name.to_string(),
                    other => panic!("unexpected fieldRef {other}"),
                }
            } else {
                let secret = &entry["valueFrom"]["secretKeyRef"];
                let secret_name = secret["name"].as_str().expect("secretKeyRef name");
                rendered
                    .secret(
                        secret_name,
                        secret["key"].as_str().expect("secretKeyRef key"),
                    )
                    .to_string()
            };
            command.env(var, value);
        }
        let child = command.spawn().expect("spawn tributary");
        let kill_command = format!("kill -9 {} 2>/dev/null", child.id());
        let watchdog = cleanup::on_exit(&kill_command);
        let mut pod = Pod {
            name: name.to_string(),
            child,
            log,
            watchdog,
            kill_command,
            _dir: dir,
        };
        pod.wait_ready(ready);
        pod
    }

    fn wait_ready(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = self.child.try_wait().expect("wait") {
                panic!(
                    "{} exited with {status}:\n{}",
                    self.name,
                    tail(&self.log(), 40)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} does not accept connections on {addr}:\n{}",
                self.name,
                tail(&self.log(), 40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, as the kubelet sends after the preStop hook; waits for the exit (30 s at most).
    fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}", self.name);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} still running 30 s after SIGTERM:\n{}",
                self.name,
                tail(&self.log(), 40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
        cleanup::forget_at_exit(&self.kill_command);
        if std::thread::panicking() {
            eprintln!(
                "---- {} log tail ----\n{}",
                self.name,
                tail(&self.log(), 60)
            );
        }
    }
}

/// `tributary hash-password` of `password`.
fn hash_password(password: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(Tributary::binary())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run tributary hash-password");
    writeln!(child.stdin.take().expect("stdin"), "{password}").expect("write password");
    let output = child.wait_with_output().expect("hash-password output");
    assert!(output.status.success(), "hash-password failed");
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// The rendered configs are ones the server accepts: a coordinator and a worker started from them
/// (users file, shared secret and a catalog location from the Secret) form a cluster that answers
/// a query over the catalog, and SIGTERM drains the worker and stops both with exit code 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_configs_run_a_cluster_that_drains_on_sigterm() {
    let lake = TempDir::new("deploy-lake");
    lake.write("sales/orders.csv", "id,amount\n1,10\n2,20\n3,30\n");
    let (pgwire, rpc) = (free_port(), free_port());
    let rendered = render(&json!({
        "ports": {"pgwire": pgwire, "rpc": rpc},
        "config": {"node": {"heartbeat_interval_ms": 200}},
        "auth": {"users": [{"name": "alice", "passwordHash": hash_password("alice-pw")}]},
        "catalogs": {"files": "connector = \"lake\"\nlocation = \"${LAKE_LOCATION}\"\n"},
        "secretEnv": {"LAKE_LOCATION": lake.url()},
    }));
    let listen = format!("127.0.0.1:{pgwire}");
    // Pod IPs: the coordinator on 127.0.0.1, the worker on 127.0.0.2, both on the chart's RPC port.
    let mut coordinator = Pod::start(
        &rendered,
        "coordinator",
        "demo-tributary-coordinator-0",
        "127.0.0.1",
        &["--listen", &listen],
        listen.parse().expect("address"),
    );
    let worker_id = "demo-tributary-worker-5d8f7-x2x4q";
    let coordinator_rpc = format!("127.0.0.1:{rpc}");
    let mut worker = Pod::start(
        &rendered,
        "worker",
        worker_id,
        "127.0.0.2",
        // The pod reaches the coordinator through its Service's DNS name; here, its address.
        &["--coordinator", &coordinator_rpc],
        format!("127.0.0.2:{rpc}").parse().expect("address"),
    );

    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(pgwire)
        .user("alice")
        .password("alice-pw")
        .dbname("tpch")
        .connect_timeout(Duration::from_secs(10));
    let client = compat_tests::connect_with(&config, "the coordinator as alice").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = client
            .query(
                "SELECT state FROM system.runtime.nodes WHERE node_id = $1",
                &[&worker_id],
            )
            .await
            .expect("system.runtime.nodes");
        if rows.first().map(|r| r.get::<_, String>(0)).as_deref() == Some("active") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "worker {worker_id} not active within 20 s; coordinator log:\n{}",
            tail(&coordinator.log(), 40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = client
        .query_one(
            "SELECT count(*), sum(amount)::bigint FROM files.sales.orders",
            &[],
        )
        .await
        .expect("query over the catalog from the rendered ConfigMap");
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (3, 60));
    drop(client);

    let status = worker.terminate();
    assert!(
        status.success(),
        "worker exit after SIGTERM: {status}\n{}",
        tail(&worker.log(), 40)
    );
    assert!(
        worker.log().contains("left the cluster"),
        "the worker did not drain and leave:\n{}",
        tail(&worker.log(), 40)
    );
    let status = coordinator.terminate();
    assert!(status.success(), "coordinator exit after SIGTERM: {status}");
}

/// The image: a Rust builder stage on Debian bookworm building only the server binary, and a
/// bookworm-slim runtime with CA certificates, the chart's non-root uid, ports and config
/// directory. Built and run (`--help`) only where a Docker daemon answers.
#[test]
fn dockerfile_builds_the_server_for_a_non_root_runtime() {
    let root = workspace_root();
    let text = std::fs::read_to_string(root.join("deploy/Dockerfile")).expect("deploy/Dockerfile");
    // Instructions, with continuation lines joined and comments left out.
    let joined = text.replace("\\\n", " ");
    let instructions: Vec<(String, String)> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (op, rest) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            (
                op.to_uppercase(),
                rest.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (op, _))| op == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert!(
        stages.len() >= 2,
        "not a multi-stage build: {} FROM",
        stages.len()
    );
    let (builder, runtime) = (
        &instructions[stages[0]..stages[stages.len() - 1]],
        &instructions[stages[stages.len() - 1]..],
    );
    let from = |stage: &[(String, String)]| stage[0].1.clone();
    assert!(
        from(builder).starts_with("rust:") && from(builder).contains("bookworm"),
        "builder: FROM {}",
        from(builder)
    );
    assert!(
        from(runtime).starts_with("debian:bookworm-slim"),
        "runtime: FROM {}",
        from(runtime)
    );
    let all = |stage: &[(String, String)], op: &str| -> Vec<String> {
        stage
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, a)| a.clone())
            .collect()
    };

    // The server crate's package name, as `cargo build -p` needs it.
    let manifest =
        std::fs::read_to_string(root.join("server/Cargo.toml")).expect("server/Cargo.toml");
    let package = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("name = "))
        .map(|n| n.trim_matches('"'))
        .expect("package name");
    let build = all(builder, "RUN").join(" ");
    for needle in [
        "cargo build --release",
        &format!("-p {package}"),
        "--bin tributary",
    ] {
        assert!(
            build.contains(needle),
            "the builder does not run `{needle}`: {build}"
        );
    }
    assert!(
        all(runtime, "COPY")
            .iter()
            .any(|c| c.contains("--from=builder") && c.contains("tributary")),
        "the runtime does not copy the binary from the builder"
    );
    assert!(
        all(runtime, "RUN").join(" ").contains("ca-certificates"),
        "the runtime does not install ca-certificates"
    );

    // Cross-checks with the chart's defaults: uid, ports, where config.toml is mounted.
    let rendered = render(&json!({}));
    let user = all(runtime, "USER")
        .pop()
        .expect("the runtime sets no USER");
    let uid: u64 = user
        .split(':')
        .next()
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| {
            panic!("USER {user}: not a numeric uid (runAsNonRoot cannot check a name)")
        });
    assert_ne!(uid, 0, "USER is root");
    assert_eq!(
        rendered.pod_spec("coordinator")["securityContext"]["runAsUser"],
        uid,
        "the chart's runAsUser differs from the image's USER"
    );
    let exposed = all(runtime, "EXPOSE").join(" ");
    for role in ["coordinator", "worker"] {
        for port in rendered.container(role)["ports"].as_array().expect("ports") {
            let number = port["containerPort"].to_string();
            assert!(
                exposed
                    .split_whitespace()
                    .any(|p| p.trim_end_matches("/tcp") == number),
                "the image does not EXPOSE {role} port {number}: EXPOSE {exposed}"
            );
        }
    }
    let entrypoint: Vec<String> =
        serde_json::from_str(&all(runtime, "ENTRYPOINT").pop().expect("ENTRYPOINT"))
            .expect("ENTRYPOINT in exec (JSON) form");
    let config_arg = entrypoint
        .iter()
        .position(|a| a == "--config")
        .expect("--config in ENTRYPOINT");
    assert_eq!(
        entrypoint.get(config_arg + 1).map(String::as_str),
        Some("/etc/tributary"),
        "the chart mounts config.toml at /etc/tributary"
    );
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).expect(".dockerignore");
    assert!(
        ignore
            .lines()
            .any(|l| l.trim().trim_end_matches('/').ends_with("target")),
        ".dockerignore keeps target/ in the build context"
    );

    docker_build_and_run(&root, uid);
}

/// `docker build` of deploy/Dockerfile and `tributary --help` in the image, where a Docker daemon
/// answers `docker info`; otherwise says why it skips.
fn docker_build_and_run(root: &Path, uid: u64) {
    let info = Command::new("docker").arg("info").output();
    match &info {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            let why = String::from_utf8_lossy(&out.stderr);
            eprintln!(
                "deploy: skipping the image build and run: `docker info` fails ({})",
                why.lines().last().unwrap_or_default().trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("deploy: skipping the image build and run: no docker command ({e})");
            return;
        }
    }
    let image = "tributary:deploy-test";
    let build = Command::new("docker")
        .args(["build", "-f", "deploy/Dockerfile", "-t", image, "."])
        .current_dir(root)
        .status()
        .expect("docker build");
    assert!(
        build.success(),
        "docker build -f deploy/Dockerfile failed: {build}"
    );
    let help = Command::new("docker")
        .args(["run", "--rm", image, "--help"])
        .output()
        .expect("docker run --help");
    let stdout = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.status.success(),
        "tributary --help in the image: {}",
        help.status
    );
    assert!(
        stdout.contains("--config") && stdout.contains("--role"),
        "help:\n{stdout}"
    );
    let id = Command::new("docker")
        .args(["run", "--rm", "--entrypoint", "id", image, "-u"])
        .output()
        .expect("docker run id -u");
    assert_eq!(String::from_utf8_lossy(&id.stdout).trim(), uid.to_string());
}
