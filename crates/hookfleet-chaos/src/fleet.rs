//! One scenario's deployment: a fresh namespace, its endpoints (written straight into Redis,
//! and kept so they can be written again after Redis lost them), its `hookfleet worker`
//! processes, and removing everything it left behind.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use hookfleet_amqp::{Broker, QueueType, Topology};
use hookfleet_core::Namespace;
use hookfleet_core::{Endpoint, EventFilter, EventType, TenantId};
use hookfleet_producer::Publisher;
use hookfleet_store::EndpointStore;
use hookfleet_testkit::{Launch, WorkerProcess, teardown};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};

use crate::load::{self, Counter, Pace, Published};
use crate::{
    AMQP_URL, DELIVERY_TIMEOUT_SECS, EVENT_TYPE, REDIS_URL, RETRY_DELAYS, RETRY_DELAYS_MS,
};
use crate::{Settings, services};

#[derive(Debug)]
pub struct Fleet {
    pub namespace: String,
    pub event_type: EventType,
    settings: Settings,
    /// Settings of every worker, after the scenario's overrides.
    env: Vec<(String, String)>,
    /// Every endpoint added, to write them again after a Redis restart.
    endpoints: Vec<Endpoint>,
    workers: usize,
    pub http: reqwest::Client,
}

impl Fleet {
    /// A fresh namespace `chaos_<name>_<8 hex>`; checks the services answer first.
    pub fn new(settings: &Settings, name: &str) -> anyhow::Result<Self> {
        services::ensure()?;
        let namespace = format!("chaos_{name}_{:08x}", rand::random::<u32>());
        std::fs::create_dir_all(&settings.log_dir)
            .with_context(|| format!("cannot create {}", settings.log_dir.display()))?;
        let env = [
            ("HOOKFLEET_NAMESPACE", namespace.as_str()),
            ("HOOKFLEET_AMQP_URL", AMQP_URL),
            ("HOOKFLEET_REDIS_URL", REDIS_URL),
            ("HOOKFLEET_ALLOW_PRIVATE_TARGETS", "true"),
            ("HOOKFLEET_EVENT_TYPES", EVENT_TYPE),
            ("HOOKFLEET_QUEUE_TYPE", "quorum"),
            ("HOOKFLEET_RETRY_DELAYS", RETRY_DELAYS),
            (
                "HOOKFLEET_DELIVERY_TIMEOUT",
                &format!("{DELIVERY_TIMEOUT_SECS}s"),
            ),
            ("HOOKFLEET_CONCURRENCY", "32"),
            ("HOOKFLEET_STALL_TIMEOUT", "15s"),
            ("RUST_LOG", "info"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Ok(Self {
            namespace,
            event_type: EVENT_TYPE.parse()?,
            settings: settings.clone(),
            env,
            endpoints: Vec::new(),
            workers: 0,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()?,
        })
    }

    /// Overrides one setting of every worker started from now on.
    pub fn set(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// The workers' concurrency (`HOOKFLEET_CONCURRENCY`).
    pub fn concurrency(&self) -> usize {
        self.env
            .iter()
            .find(|(k, _)| k == "HOOKFLEET_CONCURRENCY")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(64)
    }

    fn store(&self) -> anyhow::Result<EndpointStore> {
        Ok(EndpointStore::new(
            hookfleet_store::connect(REDIS_URL)?,
            &self.namespace,
        ))
    }

    /// Adds an endpoint of `tenant` for the scenario's event type at `url`.
    pub async fn add_endpoint(&mut self, tenant: &TenantId, url: &str) -> anyhow::Result<()> {
        let endpoint = Endpoint::new(
            tenant.clone(),
            url,
            EventFilter::Only(vec![self.event_type.clone()]),
            None,
            "chaos".to_owned(),
        )?;
        self.store()?.put(&endpoint).await?;
        self.endpoints.push(endpoint);
        Ok(())
    }

    /// Writes every endpoint again, same ids and secrets (after Redis forgot them).
    pub async fn restore_endpoints(&self) -> anyhow::Result<()> {
        let store = self.store()?;
        for endpoint in &self.endpoints {
            store.put(endpoint).await?;
        }
        Ok(())
    }

    fn topology(&self) -> anyhow::Result<Topology> {
        Ok(Topology::new(
            self.ns()?,
            QueueType::Quorum,
            vec![self.event_type.clone()],
            RETRY_DELAYS_MS
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
        ))
    }

    fn ns(&self) -> anyhow::Result<Namespace> {
        Ok(Namespace::try_from(self.namespace.clone())?)
    }

    /// Declares the namespace's exchanges and queues (as a worker does at start), so that
    /// events can be published before any worker runs.
    pub async fn declare(&self) -> anyhow::Result<()> {
        let broker = Broker::connect(AMQP_URL).await?;
        self.topology()?.declare(&broker.channel().await?).await?;
        broker.close().await;
        Ok(())
    }

    /// A publisher on its own connection, patient enough to outlast a broker restart.
    pub async fn publisher(&self) -> anyhow::Result<Arc<Publisher>> {
        let broker = Broker::connect(AMQP_URL).await?;
        Ok(Arc::new(
            Publisher::new(broker, self.ns()?).give_up_after(Duration::from_secs(60)),
        ))
    }

    /// A load of this fleet's event type for `tenant` on a publisher of its own, ready to be
    /// awaited or spawned.
    pub async fn load(
        &self,
        tenant: &TenantId,
        pace: Pace,
        progress: Arc<Counter>,
    ) -> anyhow::Result<impl Future<Output = Published> + Send + 'static> {
        let publisher = self.publisher().await?;
        Ok(load::publish(
            publisher,
            self.event_type.clone(),
            tenant.clone(),
            pace,
            progress,
        ))
    }

    /// Messages waiting in the work queue and the delay tiers (ready, not yet handed out).
    pub async fn backlog(&self) -> anyhow::Result<u32> {
        let connection = Connection::connect(AMQP_URL, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        let ns = self.ns()?;
        let queues = std::iter::once(ns.work_queue(&self.event_type)).chain(
            RETRY_DELAYS_MS
                .iter()
                .map(|ms| ns.delay_tier(Duration::from_millis(*ms))),
        );
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let mut total = 0;
        for queue in queues {
            let q = channel
                .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                .await?;
            total += q.message_count();
        }
        let _ = connection.close(200, "counted".into()).await;
        Ok(total)
    }

    /// `hookfleet dead-letters list`: one JSON object per dead letter.
    pub async fn dead_letters(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let mut command = self
            .launch()
            .command(&["dead-letters", "list", "--limit", "10000"]);
        let output = tokio::time::timeout(
            Duration::from_secs(30),
            command
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output(),
        )
        .await
        .context("`hookfleet dead-letters list` hung")??;
        if !output.status.success() {
            bail!(
                "`hookfleet dead-letters list` failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).context("a dead letter that is not JSON"))
            .collect()
    }

    /// How every `hookfleet` process of this fleet starts: its binary and settings.
    fn launch(&self) -> Launch<'_> {
        Launch {
            binary: &self.settings.binary,
            env: &self.env,
            http: &self.http,
            label: "chaos: ",
        }
    }

    /// Starts `hookfleet worker` and waits until `/readyz` answers 200.
    pub async fn spawn_worker(&mut self) -> anyhow::Result<WorkerProcess> {
        let log_path = self
            .settings
            .log_dir
            .join(format!("{}-worker-{}.log", self.namespace, self.workers));
        self.workers += 1;
        Ok(WorkerProcess::spawn(&self.launch(), log_path).await?)
    }

    /// Stops `workers` (SIGTERM, bounded) and then removes the namespace: a scenario's end.
    pub async fn finish(self, workers: impl IntoIterator<Item = WorkerProcess>) {
        for worker in workers {
            worker.stop().await;
        }
        self.cleanup().await;
    }

    /// Deletes the namespace's queues, exchanges and Redis keys. Bounded; failures are
    /// printed, so clean-up never hides a scenario's result.
    pub async fn cleanup(self) {
        let options = teardown::Options {
            extra_queues: &[],
            rabbitmq_attempt: Duration::from_secs(20),
            redis_attempt: Duration::from_secs(20),
            retry_for: Duration::ZERO,
            label: "chaos: ",
        };
        let delays = RETRY_DELAYS_MS.map(Duration::from_millis);
        teardown(&self.namespace, &[EVENT_TYPE], &delays, &options).await;
    }
}
