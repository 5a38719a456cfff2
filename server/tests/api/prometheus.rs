//! A real Prometheus (Debian's package, `prometheus` on PATH) on 127.0.0.1, scraping a small
//! exporter whose error rate the test controls. Both stop when dropped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The exporter: 1,000 requests a second to `/api/workspaces`, of which `error_ppm` per million
/// answer 500, as the counters `http_requests_total{path,status}`.
pub struct Exporter {
    pub port: u16,
    error_ppm: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
    ticker: tokio::task::JoinHandle<()>,
}

impl Exporter {
    pub async fn start() -> Exporter {
        let ok = Arc::new(AtomicU64::new(0));
        let err = Arc::new(AtomicU64::new(0));
        let error_ppm = Arc::new(AtomicU64::new(0));
        let (o, e, p) = (ok.clone(), err.clone(), error_ppm.clone());
        // Every 100 ms: 100 requests, errors carried over in millionths so the ratio is exact.
        let ticker = tokio::spawn(async move {
            let mut carry = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                carry += p.load(Ordering::Relaxed) * 100;
                let errors = carry / 1_000_000;
                carry %= 1_000_000;
                e.fetch_add(errors, Ordering::Relaxed);
                o.fetch_add(100 - errors.min(100), Ordering::Relaxed);
            }
        });
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let (ok, err) = (ok.load(Ordering::Relaxed), err.load(Ordering::Relaxed));
                async move {
                    format!(
                        "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n\
                         http_requests_total{{path=\"/api/workspaces\",status=\"200\"}} {ok}\n\
                         http_requests_total{{path=\"/api/workspaces\",status=\"500\"}} {err}\n"
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Exporter {
            port,
            error_ppm,
            task,
            ticker,
        }
    }

    /// Sets the share of requests that fail (0.02 = 2%).
    pub fn set_error_rate(&self, ratio: f64) {
        self.error_ppm
            .store((ratio * 1_000_000.0).round() as u64, Ordering::Relaxed);
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.task.abort();
        self.ticker.abort();
    }
}

/// A Prometheus scraping `targets` every second, with Tenantry's rule file loaded.
pub struct Prometheus {
    pub url: String,
    child: Child,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Prometheus {
    pub async fn start(targets: &[u16]) -> Prometheus {
        let dir = std::env::temp_dir().join(format!(
            "tenantry-prom-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let rules = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/prometheus/rules.yml"
        );
        let targets: Vec<String> = targets.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{rules}']\n\
             scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting prometheus ({e}): scripts/test installs it (scripts/lib.sh ensure_prometheus)")
            });
        let url = format!("http://127.0.0.1:{port}");
        let prom = Prometheus {
            url,
            child,
            _dir: TempDir(dir),
        };
        let client = reqwest_lite(&prom.url);
        for _ in 0..200 {
            if client.await_ready().await {
                return prom;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("prometheus did not become ready at {}", prom.url);
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Readiness over a plain TCP request (no HTTP client in the test's dependencies).
struct Ready(String);

fn reqwest_lite(url: &str) -> Ready {
    Ready(url.trim_start_matches("http://").to_string())
}

impl Ready {
    async fn await_ready(&self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = tokio::net::TcpStream::connect(&self.0).await else {
            return false;
        };
        let req = format!(
            "GET /-/ready HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.0
        );
        if s.write_all(req.as_bytes()).await.is_err() {
            return false;
        }
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        buf.starts_with(b"HTTP/1.1 200")
    }
}
