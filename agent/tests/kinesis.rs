//! The real agent binary with `kind = "kinesis"` against moto (the local AWS API server): a
//! stream of two shards, a log file tailed into it, and every record read back from every
//! shard and decoded. Skips without `moto_server` (pip install 'moto[server]'), except under
//! `CI=true`, where that is a failure.
#![allow(clippy::unwrap_used)]

mod common;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::types::ShardIteratorType;
use common::*;
use outpost_testkit::Moto;
use std::collections::BTreeMap;

const STREAM: &str = "outpost-agent-test";

/// Every frame in the stream, from every shard: `(partition key, frame)`.
async fn read_stream(client: &Client) -> Vec<(String, Vec<u8>)> {
    let shards = client
        .list_shards()
        .stream_name(STREAM)
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for shard in shards.shards() {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(STREAM)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .unwrap();
        loop {
            let page = client
                .get_records()
                .shard_iterator(&iterator)
                .send()
                .await
                .unwrap();
            if page.records().is_empty() {
                break;
            }
            for r in page.records() {
                out.push((r.partition_key().to_owned(), r.data().as_ref().to_vec()));
            }
            match page.next_shard_iterator {
                Some(next) => iterator = next,
                None => break,
            }
        }
    }
    out
}

/// The log lines of the frames, by batch sequence number (each at most once).
fn lines_by_seq(frames: &[(String, Vec<u8>)]) -> BTreeMap<u64, Vec<String>> {
    let mut out = BTreeMap::new();
    for (_, frame) in frames {
        let batch = outpost_proto::decode(frame).unwrap();
        let lines = batch
            .records
            .into_iter()
            .filter_map(|r| match r {
                outpost_proto::Record::Log(l) => Some(String::from_utf8(l.line).unwrap()),
                outpost_proto::Record::Metric(_) => None,
            })
            .collect();
        assert!(
            out.insert(batch.seq, lines).is_none(),
            "batch {} stored twice",
            batch.seq
        );
    }
    out
}

#[test]
fn tailed_lines_reach_a_kinesis_stream_exactly_once_and_in_order() {
    let Some(moto) = Moto::start() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(async { Client::new(&moto.sdk_config().await) });
    rt.block_on(outpost_testkit::create_stream(&client, STREAM, 2));

    let env = Env::new();
    let cfg = env.config_with_sink(
        &format!("kind = \"kinesis\"\nstream = \"{STREAM}\"\n"),
        "*.log",
        "[batch]\nmax_records = 40\nmax_age = \"50ms\"\n",
    );
    let app = env.logs().join("app.log");
    let mut expected = lines("kinesis", 0..500);
    append(&app, &expected);
    let log = env.path("agent.log");
    let mut agent = start_agent_with_env(&cfg, &log, &moto.env());
    // More lines while it runs.
    let more = lines("kinesis-live", 0..700);
    for chunk in more.chunks(100) {
        append(&app, chunk);
    }
    expected.extend(more);

    let mut frames = Vec::new();
    poll_until("every line in the stream", || {
        frames = rt.block_on(read_stream(&client));
        lines_by_seq(&frames).values().map(Vec::len).sum::<usize>() >= expected.len()
    });
    agent.signal("-TERM");
    assert_eq!(agent.wait().code(), Some(0));

    assert!(
        frames.iter().all(|(key, _)| key == "test-agent"),
        "partition key = agent id"
    );
    let stored: Vec<String> = lines_by_seq(&frames).into_values().flatten().collect();
    assert_eq!(stored.len(), expected.len(), "nothing stored twice");
    assert_eq!(stored, expected, "every line once, in order");
    assert!(
        frames.len() > 10,
        "{} records: one frame each, many frames",
        frames.len()
    );
    assert!(frames.iter().all(|(_, f)| f.len() <= 1 << 20));

    // The spool is empty after a clean stop.
    let out = run_ok(
        std::process::Command::new(agent_bin())
            .args(["status", "--json", "--config"])
            .arg(&cfg),
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["dead_letters"], 0, "{status}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("kinesis:outpost-agent-test"), "{text}");
    assert!(!text.contains("WARN"), "{text}");
}

#[test]
fn a_missing_stream_keeps_the_frames_spooled_until_it_exists() {
    let Some(moto) = Moto::start() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(async { Client::new(&moto.sdk_config().await) });
    let env = Env::new();
    let cfg = env.config_with_sink(
        &format!("kind = \"kinesis\"\nstream = \"{STREAM}\"\n"),
        "*.log",
        "[batch]\nmax_records = 40\nmax_age = \"50ms\"\n",
    );
    let expected = lines("early", 0..200);
    append(&env.logs().join("app.log"), &expected);
    let log = env.path("agent.log");
    let mut agent = start_agent_with_env(&cfg, &log, &moto.env());

    // ResourceNotFoundException: a configuration problem, logged at error, never dead-lettered.
    let text = wait_for_log(&log, "refuses this agent");
    assert!(text.contains("ResourceNotFoundException"), "{text}");
    rt.block_on(outpost_testkit::create_stream(&client, STREAM, 2));
    let mut frames = Vec::new();
    poll_until("every line in the stream once it exists", || {
        frames = rt.block_on(read_stream(&client));
        lines_by_seq(&frames).values().map(Vec::len).sum::<usize>() >= expected.len()
    });
    agent.signal("-TERM");
    assert_eq!(agent.wait().code(), Some(0));
    let stored: Vec<String> = lines_by_seq(&frames).into_values().flatten().collect();
    assert_eq!(stored, expected);
    assert!(!env.path("state/dead-letter").exists());
}
