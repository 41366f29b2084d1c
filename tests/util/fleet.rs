//! [`Fleet`]: one test's namespace (a `hookfleet_testkit::Fleet` with the tests' settings),
//! the CLI commands the tests drive, and clean-up even after a panic.

use std::process::Output;
use std::time::Duration;

use hookfleet_testkit::{RawPublisher, WorkerEnv, WorkerProcess};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_hookfleet");

/// One test's deployment: a fresh namespace and the environment of every command it runs.
#[derive(Debug)]
pub struct Fleet {
    /// `None` once cleaned up; otherwise `Drop` removes the namespace (after a panic).
    kit: Option<hookfleet_testkit::Fleet>,
}

impl Fleet {
    pub fn new() -> Self {
        let ms = Duration::from_millis;
        // Short retries and timeout, so that retries, timeouts and shutdowns keep tests fast.
        let env = WorkerEnv::fresh("t")
            .retry_delays(&[ms(200), ms(400), ms(800)])
            .delivery_timeout(ms(2_000));
        let kit = hookfleet_testkit::Fleet::new(BIN, env!("CARGO_TARGET_TMPDIR"), env).unwrap();
        Self { kit: Some(kit) }
    }

    fn kit(&self) -> &hookfleet_testkit::Fleet {
        self.kit.as_ref().expect("the fleet was cleaned up")
    }

    pub fn namespace(&self) -> &str {
        self.kit().namespace()
    }

    /// Sets one environment variable for every command of this fleet.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.kit
            .as_mut()
            .expect("the fleet was cleaned up")
            .set(key, value);
        self
    }

    /// Runs `hookfleet <args>` to completion (bounded) and returns what it did.
    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_with(&[], args).await
    }

    /// [`Fleet::run`] with extra environment variables for this command only.
    pub async fn run_with(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        self.kit().run(env, args).await.unwrap()
    }

    /// Runs `hookfleet <args>` with `setting=value` and asserts the contract's answer to a bad
    /// setting: exit status 2 and one line, naming the setting, within 5 s (a command that
    /// accepted the value could run until killed). Returns that line.
    pub async fn assert_refused(&self, setting: &str, value: &str, args: &[&str]) -> String {
        let env = [(setting, value)];
        let run = self.run_with(&env, args);
        let Ok(output) = tokio::time::timeout(Duration::from_secs(5), run).await else {
            panic!("{setting}={value:?} was accepted: `{args:?}` kept running");
        };
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(
            output.status.code(),
            Some(2),
            "{setting}={value:?}: {stderr}"
        );
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{setting}={value:?}: not one line: {stderr}"
        );
        assert!(stderr.contains(setting), "{setting}={value:?}: {stderr}");
        stderr
    }

    /// Runs a command that must succeed; returns its stdout.
    pub async fn run_ok(&self, args: &[&str]) -> String {
        self.kit().run_ok(args).await.unwrap()
    }

    pub async fn topology(&self) {
        self.kit().declare().await.unwrap();
    }

    /// `hookfleet endpoints add`; returns the endpoint as printed.
    pub async fn add_endpoint(&self, tenant: &str, url: &str, events: &[&str]) -> Value {
        let events = events.join(",");
        let args = [
            "endpoints",
            "add",
            "--tenant",
            tenant,
            "--url",
            url,
            "--events",
            &events,
        ];
        serde_json::from_str(self.run_ok(&args).await.trim()).unwrap()
    }

    /// `hookfleet publish`; returns the event id it printed.
    pub async fn publish(&self, event_type: &str, tenant: &str, data: &str) -> String {
        let args = [
            "publish", "--type", event_type, "--tenant", tenant, "--data", data,
        ];
        let id = self.run_ok(&args).await.trim().to_owned();
        assert!(
            !id.is_empty() && !id.contains('\n'),
            "publish printed {id:?}"
        );
        id
    }

    /// Publishes `body` as any AMQP client would (docs/contract.md §1), waiting for the confirm.
    pub async fn publish_raw(&self, event_type: &str, tenant: &str, id: &str, body: &[u8]) {
        let publisher = self.raw_publisher(event_type).await;
        publisher.publish(id, Some(tenant), body).await.unwrap();
    }

    pub async fn raw_publisher(&self, event_type: &str) -> RawPublisher {
        RawPublisher::connect(self.namespace(), event_type)
            .await
            .unwrap()
    }

    /// `hookfleet dead-letters list`, parsed.
    pub async fn dead_letters(&self) -> Vec<Value> {
        self.kit().dead_letters().await.unwrap()
    }

    /// Starts `hookfleet worker` and waits until `/readyz` answers 200.
    pub async fn spawn_worker(&self) -> WorkerProcess {
        self.spawn_worker_with(&[]).await
    }

    /// [`Fleet::spawn_worker`] with extra environment variables for this worker only.
    pub async fn spawn_worker_with(&self, env: &[(&str, &str)]) -> WorkerProcess {
        self.kit().spawn_worker(env).await.unwrap()
    }

    /// Deletes the work queue of `event_type` behind the workers' backs: the broker then
    /// cancels their consumers (`basic.cancel`).
    pub async fn delete_work_queue(&self, event_type: &str) {
        let broker = hookfleet_amqp::Broker::connect(hookfleet_testkit::AMQP_URL)
            .await
            .unwrap();
        let queue = format!("{}.work.{event_type}", self.namespace());
        let channel = broker.channel().await.unwrap();
        (channel
            .queue_delete(queue.as_str().into(), Default::default())
            .await)
            .unwrap();
        broker.close().await;
    }

    /// The namespace's endpoint records, read straight from Redis.
    pub fn store(&self) -> hookfleet_store::EndpointStore {
        self.kit().store().unwrap()
    }

    /// Starts `hookfleet api` with the test operator token and waits until it is ready.
    pub async fn spawn_api(&self) -> super::Api {
        self.spawn_api_with(&[]).await
    }

    /// [`Fleet::spawn_api`] with extra environment variables for this process only.
    pub async fn spawn_api_with(&self, env: &[(&str, &str)]) -> super::Api {
        let mut all = vec![("HOOKFLEET_API_TOKEN", super::OPERATOR_TOKEN)];
        all.extend_from_slice(env);
        super::Api::new(self.kit().spawn_api(&all).await.unwrap())
    }

    /// Deletes the namespace's queues, exchanges and Redis keys. Stop workers first.
    pub async fn cleanup(mut self) {
        if let Some(kit) = self.kit.take() {
            kit.teardown(&[]).await;
        }
    }
}

impl Drop for Fleet {
    /// A test that panicked never reached `cleanup`: remove its namespace anyway, on a thread
    /// of its own because `Drop` cannot await.
    fn drop(&mut self) {
        let Some(kit) = self.kit.take() else { return };
        let cleaner = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let bounded = tokio::time::timeout(Duration::from_secs(10), kit.teardown(&[]));
                let _ = bounded.await;
            });
        });
        let _ = cleaner.join();
    }
}
