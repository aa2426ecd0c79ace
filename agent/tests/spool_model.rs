//! Model test of the disk spool: random sequences of append, group append, ack of the oldest,
//! read and reopen, checked step by step against a `VecDeque` of what must still be delivered.
//!
//! Every appended, unacknowledged entry is delivered in order with identical bytes, none twice
//! within one open, across any number of reopens; ids are consecutive; `Full` and `TooLarge`
//! change nothing; `bytes()` is what the segment files take and never passes `max_bytes`; with
//! nothing pending, any payload that can ever fit is accepted.
#![allow(clippy::unwrap_used)]

use outpost_agent::spool::{Spool, SpoolError, SpoolOptions};
use proptest::prelude::*;
use std::collections::{HashSet, VecDeque};
use std::path::Path;

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    AppendMany(Vec<Vec<u8>>),
    AckOldest,
    Read,
    Reopen,
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..120)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => payload().prop_map(Op::Append),
        1 => proptest::collection::vec(payload(), 0..5).prop_map(Op::AppendMany),
        3 => Just(Op::AckOldest),
        4 => Just(Op::Read),
        1 => Just(Op::Reopen),
    ]
}

struct Model {
    /// Appended and not acknowledged, oldest first.
    unacked: VecDeque<(u64, Vec<u8>)>,
    next_id: u64,
    /// The id last handed out in this open.
    cursor: Option<u64>,
    /// Ids handed out in this open.
    delivered: HashSet<u64>,
}

fn open(dir: &Path, options: SpoolOptions, model: &Model) -> Result<Spool, TestCaseError> {
    let (spool, r) = Spool::open(dir, options).unwrap();
    prop_assert_eq!(r.entries_recovered, model.unacked.len() as u64);
    prop_assert!(r.set_aside.is_empty());
    prop_assert_eq!(r.bytes_truncated, 0);
    prop_assert_eq!(r.next_id, model.next_id);
    Ok(spool)
}

/// What the segment files really take.
fn segment_bytes_on_disk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

fn run(ops: Vec<Op>, options: SpoolOptions) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model {
        unacked: VecDeque::new(),
        next_id: 1,
        cursor: None,
        delivered: HashSet::new(),
    };
    let mut spool = open(dir.path(), options, &model)?;
    for op in ops {
        match op {
            Op::Append(p) => {
                let accept = spool.can_accept(p.len());
                match spool.append(&p) {
                    Ok(id) => {
                        prop_assert!(accept);
                        prop_assert_eq!(id, model.next_id);
                        model.unacked.push_back((id, p));
                        model.next_id += 1;
                    }
                    Err(SpoolError::Full { .. }) => {
                        prop_assert!(!accept);
                        prop_assert!(p.len() <= spool.max_payload_len());
                        // Liveness: with nothing owed, anything that can ever fit fits now.
                        prop_assert!(!model.unacked.is_empty(), "Full with nothing pending");
                    }
                    Err(SpoolError::TooLarge { len, max }) => {
                        prop_assert!(!accept);
                        prop_assert!(len > max);
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("append: {e}"))),
                }
            }
            Op::AppendMany(ps) => {
                let before = spool.bytes();
                let n = ps.len() as u64;
                match spool.append_many(&ps) {
                    Ok(ids) => {
                        prop_assert_eq!(ids.clone(), model.next_id..model.next_id + n);
                        for (id, p) in ids.zip(ps) {
                            model.unacked.push_back((id, p));
                        }
                        model.next_id += n;
                    }
                    Err(SpoolError::Full { .. } | SpoolError::TooLarge { .. }) => {
                        prop_assert_eq!(spool.bytes(), before);
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("append_many: {e}"))),
                }
            }
            Op::AckOldest => match model.unacked.pop_front() {
                Some((id, _)) => spool.ack(id).unwrap(),
                None => {
                    let refused = matches!(
                        spool.ack(model.next_id),
                        Err(SpoolError::OutOfOrderAck { .. })
                    );
                    prop_assert!(refused);
                }
            },
            Op::Read => {
                let expected = model
                    .unacked
                    .iter()
                    .find(|(id, _)| model.cursor.is_none_or(|c| *id > c));
                let got = spool.next_unacked(model.cursor).unwrap();
                match (got, expected) {
                    (None, None) => {}
                    (Some(e), Some((id, p))) => {
                        prop_assert_eq!(e.id, *id);
                        prop_assert_eq!(&e.payload, p);
                        prop_assert!(
                            model.delivered.insert(e.id),
                            "entry {} handed out twice",
                            e.id
                        );
                        model.cursor = Some(e.id);
                    }
                    (got, expected) => {
                        return Err(TestCaseError::fail(format!(
                            "read {:?}, model expected {:?}",
                            got.map(|e| e.id),
                            expected.map(|e| e.0)
                        )));
                    }
                }
            }
            Op::Reopen => {
                drop(spool);
                model.cursor = None;
                model.delivered.clear();
                spool = open(dir.path(), options, &model)?;
            }
        }
        prop_assert!(spool.bytes() <= options.max_bytes);
        prop_assert_eq!(spool.bytes(), segment_bytes_on_disk(dir.path()));
        prop_assert_eq!(spool.pending(), model.unacked.len() as u64);
        prop_assert_eq!(spool.oldest_unacked(), model.unacked.front().map(|e| e.0));
        prop_assert_eq!(spool.next_id(), model.next_id);
    }
    // Finally everything still owed comes out, in order, after one more restart.
    drop(spool);
    model.cursor = None;
    let mut spool = open(dir.path(), options, &model)?;
    let mut after = None;
    for (id, p) in &model.unacked {
        let e = spool.next_unacked(after).unwrap().unwrap();
        prop_assert_eq!((e.id, &e.payload), (*id, p));
        after = Some(e.id);
    }
    prop_assert!(spool.next_unacked(after).unwrap().is_none());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn spool_matches_a_fifo_model(
        ops in proptest::collection::vec(op(), 1..60),
        segment_bytes in 40u64..400,
        max_bytes in 100u64..1500,
    ) {
        run(ops, SpoolOptions { segment_bytes, max_bytes })?;
    }
}
