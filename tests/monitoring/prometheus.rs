//! A real Prometheus for a test: the project's scrape config made local, and the child
//! process.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::PROMETHEUS_WAIT;

/// The project's scrape config made local: intervals of 1 s, rule files by absolute path
/// (`rules_dir`), and each job's service discovery replaced by the one target `target(job)`.
pub fn local_config(project: &str, rules_dir: &Path, target: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    let (mut job, mut in_rule_files, mut skip_below) = (None::<String>, false, None::<usize>);
    let mut rewritten = BTreeSet::new();
    for line in project.lines() {
        let trimmed = line.trim();
        let indent = line.len() - line.trim_start().len();
        let pad = &line[..indent];
        if let Some(depth) = skip_below {
            if trimmed.is_empty() || trimmed.starts_with('#') || indent > depth {
                continue;
            }
            skip_below = None;
        }
        if indent == 0 && !trimmed.is_empty() {
            in_rule_files = trimmed == "rule_files:";
        }
        if let Some(name) = trimmed.strip_prefix("- job_name:") {
            job = Some(name.trim().to_owned());
        }
        if in_rule_files && let Some(file) = trimmed.strip_prefix("- ") {
            out += &format!("{pad}- {}\n", rules_dir.join(file).display());
        } else if let Some(key) = (["scrape_interval:", "evaluation_interval:"].iter())
            .find(|key| trimmed.starts_with(**key))
        {
            out += &format!("{pad}{key} 1s\n");
        } else if trimmed == "dns_sd_configs:" || trimmed == "static_configs:" {
            let job = job.clone().expect("a target list outside a job");
            out += &format!(
                "{pad}static_configs:\n{pad}  - targets: [\"{}\"]\n",
                target(&job)
            );
            rewritten.insert(job);
            skip_below = Some(indent);
        } else {
            out += line;
            out.push('\n');
        }
    }
    for job in ["hookfleet-worker", "hookfleet-api"] {
        assert!(rewritten.contains(job), "no job {job} in:\n{project}");
    }
    out
}

/// The one value of an instant query's answer, if it has exactly one.
pub fn scalar(answer: &Value) -> Option<f64> {
    match answer["data"]["result"].as_array()?.as_slice() {
        [one] => one["value"][1].as_str()?.parse().ok(),
        _ => None,
    }
}

/// A `prometheus` child process with its own data directory and port; killed if dropped.
#[derive(Debug)]
pub struct Prometheus {
    child: tokio::process::Child,
    base_url: String,
    log_path: PathBuf,
    http: reqwest::Client,
}

impl Prometheus {
    /// Writes `config` into `dir`, starts Prometheus on it and waits until it is ready.
    pub async fn start(dir: &Path, config: &str) -> Self {
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = hookfleet_testkit::free_port().unwrap();
        let log_path = dir.join("prometheus.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = tokio::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("`prometheus` not found: apt-get install prometheus (scripts/check-monitoring does)");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let prometheus = Self {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            log_path,
            http,
        };
        prometheus
            .poll("Prometheus ready", ("/-/ready", &[]), |_| Some(()))
            .await;
        prometheus
    }

    /// GET `path` with `params`: the status and the body as JSON (`Value::Null` if it is
    /// not), if Prometheus answered.
    pub async fn get(&self, path: &str, params: &[(&str, &str)]) -> Option<(u16, Value)> {
        let url = format!("{}{path}", self.base_url);
        let url = reqwest::Url::parse_with_params(&url, params).unwrap();
        let response = self.http.get(url).send().await.ok()?;
        let status = response.status().as_u16();
        let body = response.bytes().await.ok()?;
        Some((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }

    /// The answer of the instant query `promql`, successful or not.
    pub async fn query(&self, promql: &str) -> Value {
        let answer = self.get("/api/v1/query", &[("query", promql)]).await;
        answer.map_or(Value::Null, |(_, body)| body)
    }

    /// Polls GET `path` until it answers 200 and `check` takes its body; panics naming
    /// `what` (with Prometheus's log) after [`PROMETHEUS_WAIT`].
    pub async fn poll<T>(
        &self,
        what: &str,
        (path, params): (&str, &[(&str, &str)]),
        check: impl Fn(&Value) -> Option<T>,
    ) -> T {
        let started = Instant::now();
        let mut last = None;
        while started.elapsed() < PROMETHEUS_WAIT {
            if let Some((status, body)) = self.get(path, params).await {
                if status == 200
                    && let Some(found) = check(&body)
                {
                    return found;
                }
                last = Some(body);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        panic!("timed out waiting for {what} ({path} {params:?}); last answer {last:?}\n{log}")
    }

    /// Polls the instant query `promql` until `check` holds for its answer.
    pub async fn eventually(&self, what: &str, promql: &str, check: impl Fn(&Value) -> bool) {
        let request = ("/api/v1/query", &[("query", promql)][..]);
        self.poll(what, request, |answer| check(answer).then_some(()))
            .await;
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
