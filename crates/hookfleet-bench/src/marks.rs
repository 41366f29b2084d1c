//! `--marks N`: what a de-duplication mark costs in Redis memory, on a private `redis-server`
//! (a free port, nothing on disk) so that nothing else's keys count.
//!
//! Two layouts, same run: one key per mark (`SET <ns>:dedup:{ep:evt} done PX`, what earlier
//! versions wrote), and the store's own `Dedup` (intsets per endpoint and time bucket, each
//! mark committed after its claim, as a delivery makes them). Each inserts N marks over
//! [`ENDPOINTS`] endpoints; the table shows Redis's `used_memory` growth per mark and the
//! inserts per second.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{StreamExt, stream};
use hookfleet_core::{EndpointId, EventId, Namespace};
use hookfleet_store::{Claim, Dedup, Redis, redis};

/// Marks spread over this many endpoints (100 000 per endpoint at a million).
const ENDPOINTS: u64 = 10;
/// Commits in flight at once, as a busy worker has.
const IN_FLIGHT: usize = 256;
/// The window both layouts are written with.
const WINDOW: Duration = Duration::from_secs(24 * 3600);

/// One layout's figures.
struct Row {
    layout: &'static str,
    marks: u64,
    bytes: i64,
    seconds: f64,
}

/// Runs both layouts with `marks` marks each and returns the markdown table.
pub async fn run(marks: u64) -> anyhow::Result<String> {
    let server = PrivateRedis::start().await?;
    let redis = hookfleet_store::connect(&server.url)?;
    let namespace: Namespace = "bench_marks".parse()?;
    let mut rows = Vec::new();

    eprintln!("marks: {marks} keys of the old layout");
    rows.push(
        measure(
            &redis,
            "key per mark (SET … PX)",
            marks,
            key_per_mark(&redis, marks),
        )
        .await?,
    );

    eprintln!("marks: {marks} marks through Dedup::commit");
    let dedup = Dedup::new(redis.clone(), &namespace, Duration::from_secs(15), WINDOW);
    rows.push(
        measure(
            &redis,
            "intsets per endpoint and bucket",
            marks,
            commits(&dedup, marks),
        )
        .await?,
    );

    Ok(table(&rows))
}

/// Flushes, then runs `insert` and reads how much `used_memory` grew.
async fn measure(
    redis: &Redis,
    layout: &'static str,
    marks: u64,
    insert: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<Row> {
    let mut conn = redis.clone();
    redis::cmd("FLUSHALL")
        .arg("SYNC")
        .exec_async(&mut conn)
        .await?;
    let before = used_memory(redis).await?;
    let started = Instant::now();
    insert.await?;
    let seconds = started.elapsed().as_secs_f64();
    let after = used_memory(redis).await?;
    Ok(Row {
        layout,
        marks,
        bytes: after - before,
        seconds,
    })
}

fn ids(n: u64) -> anyhow::Result<(EndpointId, EventId)> {
    let endpoint = format!("ep_{:024x}", n % ENDPOINTS).parse()?;
    let event = format!("evt_{n:032x}").parse()?;
    Ok((endpoint, event))
}

/// Earlier versions' layout: a key per (endpoint, event), pipelined 1 000 at a time.
async fn key_per_mark(redis: &Redis, marks: u64) -> anyhow::Result<()> {
    let mut conn = redis.clone();
    for chunk in (0..marks).collect::<Vec<_>>().chunks(1_000) {
        let mut pipe = redis::pipe();
        for &n in chunk {
            let (endpoint, event) = ids(n)?;
            pipe.cmd("SET")
                .arg(format!("bench_marks:dedup:{{{endpoint}:{event}}}"))
                .arg("done")
                .arg("PX")
                .arg(WINDOW.as_millis() as u64)
                .ignore();
        }
        pipe.exec_async(&mut conn).await?;
    }
    Ok(())
}

/// The store's layout, through the code the workers run: a claim, then a commit.
async fn commits(dedup: &Dedup, marks: u64) -> anyhow::Result<()> {
    let mut results = stream::iter(0..marks)
        .map(|n| async move {
            let (endpoint, event) = ids(n)?;
            let Claim::Acquired(held) = dedup.claim(&endpoint, &event).await? else {
                anyhow::bail!("{event} was claimed or delivered already");
            };
            anyhow::Ok(dedup.commit(&endpoint, &event, &held, None).await?)
        })
        .buffer_unordered(IN_FLIGHT);
    while let Some(result) = results.next().await {
        result?;
    }
    Ok(())
}

async fn used_memory(redis: &Redis) -> anyhow::Result<i64> {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut redis.clone())
        .await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO memory has no used_memory")
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| layout | marks | used_memory growth | bytes per mark | inserts/s |\n|---|---:|---:|---:|---:|\n",
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {:.1} MiB | {:.1} | {:.0} |\n",
            row.layout,
            row.marks,
            row.bytes as f64 / 1_048_576.0,
            row.bytes as f64 / row.marks as f64,
            row.marks as f64 / row.seconds,
        ));
    }
    if let [old, new] = rows {
        out.push_str(&format!(
            "\nA mark costs {:.2}× the bytes of a key per mark.\n",
            new.bytes as f64 / old.bytes as f64
        ));
    }
    out
}

/// A `redis-server` of this run's own, on a free port; killed when dropped.
struct PrivateRedis {
    url: String,
    _child: tokio::process::Child,
}

impl PrivateRedis {
    async fn start() -> anyhow::Result<Self> {
        let port = hookfleet_testkit::free_port()?;
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start redis-server (is it on PATH?)")?;
        let url = format!("redis://127.0.0.1:{port}");
        let redis = hookfleet_store::connect(&url)?;
        for _ in 0..100 {
            if hookfleet_store::ping(&redis).await.is_ok() {
                return Ok(Self { url, _child: child });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("redis-server on port {port} did not answer within 5 s")
    }
}
