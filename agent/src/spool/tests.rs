//! Unit tests of the spool's behaviour through its public API, on real files in a temp dir.

use super::format::{
    ACKED_MAGIC, ENTRY_HEADER_LEN, HEADER_LEN, MAX_PAYLOAD_LEN, decode_header, segment_name,
};
use super::*;
use std::path::Path;

fn open(dir: &Path, options: SpoolOptions) -> Spool {
    Spool::open(dir, options).unwrap().0
}

fn small(segment_bytes: u64) -> SpoolOptions {
    SpoolOptions {
        segment_bytes,
        ..SpoolOptions::default()
    }
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    names
}

fn drain(spool: &mut Spool) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut after = None;
    while let Some(e) = spool.next_unacked(after).unwrap() {
        after = Some(e.id);
        out.push((e.id, e.payload));
    }
    out
}

#[test]
fn append_read_ack_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, r) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    assert_eq!(
        (r.next_id, r.entries_recovered, r.acked_file),
        (1, 0, AckedFile::Missing)
    );
    assert_eq!(s.append(b"one").unwrap(), 1);
    assert_eq!(s.append(b"").unwrap(), 2);
    assert_eq!(s.append(b"three").unwrap(), 3);
    assert_eq!(s.pending(), 3);
    assert_eq!(
        drain(&mut s),
        vec![
            (1, b"one".to_vec()),
            (2, Vec::new()),
            (3, b"three".to_vec())
        ]
    );
    // Reading does not consume: without an ack the oldest comes back.
    assert_eq!(s.next_unacked(None).unwrap().unwrap().id, 1);
    s.ack(1).unwrap();
    assert_eq!(
        (s.pending(), s.acked(), s.oldest_unacked()),
        (2, 1, Some(2))
    );
    assert_eq!(s.next_unacked(None).unwrap().unwrap().id, 2);
    // `after` below the watermark still starts at the oldest unacknowledged entry.
    assert_eq!(s.next_unacked(Some(0)).unwrap().unwrap().id, 2);
    let acked = std::fs::read(dir.path().join("acked")).unwrap();
    assert_eq!(decode_header(&acked, ACKED_MAGIC), Ok(1));
}

#[test]
fn a_group_is_acknowledged_at_once_and_segments_freed() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), small(64));
    for i in 0..10u8 {
        s.append(&[i; 40]).unwrap();
    }
    let before = segment_files(dir.path()).len();
    assert!(before > 2, "{before}");
    s.ack_through(7).unwrap();
    assert_eq!(
        (s.pending(), s.acked(), s.oldest_unacked()),
        (3, 7, Some(8))
    );
    assert!(segment_files(dir.path()).len() < before);
    assert_eq!(s.next_unacked(None).unwrap().unwrap().id, 8);
    // Again, or below the watermark: nothing changes. Past the last entry: refused.
    s.ack_through(7).unwrap();
    s.ack_through(3).unwrap();
    assert_eq!(s.acked(), 7);
    assert!(matches!(
        s.ack_through(11),
        Err(SpoolError::OutOfOrderAck {
            id: 11,
            expected: 8
        })
    ));
    s.ack_through(10).unwrap();
    assert_eq!((s.pending(), s.oldest_unacked()), (0, None));
    // The watermark survives a restart.
    drop(s);
    let s = open(dir.path(), small(64));
    assert_eq!((s.acked(), s.pending()), (10, 0));
}

#[test]
fn reading_the_newest_segment_follows_later_appends() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), SpoolOptions::default());
    s.append(b"a").unwrap();
    assert_eq!(s.next_unacked(None).unwrap().unwrap().payload, b"a");
    assert_eq!(s.next_unacked(Some(1)).unwrap(), None);
    s.append(b"b").unwrap();
    assert_eq!(s.next_unacked(Some(1)).unwrap().unwrap().payload, b"b");
}

#[test]
fn rolls_over_and_deletes_fully_acknowledged_segments() {
    let dir = tempfile::tempdir().unwrap();
    // Room for exactly two 10-byte entries per segment.
    let mut s = open(dir.path(), small(HEADER_LEN + 2 * (ENTRY_HEADER_LEN + 10)));
    for i in 0..5u8 {
        s.append(&[i; 10]).unwrap();
    }
    assert_eq!(
        segment_files(dir.path()),
        vec![segment_name(1), segment_name(3), segment_name(5)]
    );
    assert_eq!(s.bytes(), 3 * HEADER_LEN + 5 * (ENTRY_HEADER_LEN + 10));
    let got = drain(&mut s);
    assert_eq!(
        got.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert!(got.iter().all(|(id, p)| p == &[(*id - 1) as u8; 10]));

    s.ack(1).unwrap();
    assert_eq!(
        segment_files(dir.path()).len(),
        3,
        "segment 1 still holds entry 2"
    );
    s.ack(2).unwrap();
    assert_eq!(
        segment_files(dir.path()),
        vec![segment_name(3), segment_name(5)]
    );
    s.ack(3).unwrap();
    s.ack(4).unwrap();
    assert_eq!(segment_files(dir.path()), vec![segment_name(5)]);
    s.ack(5).unwrap();
    // The newest segment stays to be appended to, even with nothing left to deliver.
    assert_eq!(segment_files(dir.path()), vec![segment_name(5)]);
    assert_eq!(s.pending(), 0);
    assert_eq!(s.next_unacked(None).unwrap(), None);
    assert_eq!(s.append(&[5; 10]).unwrap(), 6);
    assert_eq!(segment_files(dir.path()), vec![segment_name(5)]);
    // Once it rolls, the old one (all acknowledged) goes.
    s.ack(6).unwrap();
    assert_eq!(s.append(&[6; 10]).unwrap(), 7);
    assert_eq!(segment_files(dir.path()), vec![segment_name(7)]);
    assert_eq!(drain(&mut s), vec![(7, vec![6; 10])]);
}

#[test]
fn steady_append_then_ack_reuses_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), SpoolOptions::default());
    for i in 1..=20u64 {
        assert_eq!(s.append(b"frame").unwrap(), i);
        assert_eq!(s.next_unacked(Some(i - 1)).unwrap().unwrap().id, i);
        s.ack(i).unwrap();
    }
    assert_eq!(segment_files(dir.path()), vec![segment_name(1)]);
    drop(s);
    // On restart a segment with nothing to deliver is removed; ids continue from the watermark.
    let (mut s, r) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    assert_eq!((r.segments, r.segments_removed, r.next_id), (0, 1, 21));
    assert_eq!(s.append(b"frame").unwrap(), 21);
}

#[test]
fn a_single_entry_larger_than_a_segment_gets_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), small(64));
    s.append(&[1; 200]).unwrap();
    s.append(&[2; 200]).unwrap();
    assert_eq!(
        segment_files(dir.path()),
        vec![segment_name(1), segment_name(2)]
    );
    assert_eq!(drain(&mut s).len(), 2);
}

#[test]
fn full_exactly_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let entry = ENTRY_HEADER_LEN + 100;
    let options = SpoolOptions {
        segment_bytes: DEFAULT_SEGMENT_BYTES,
        max_bytes: HEADER_LEN + 2 * entry,
    };
    let mut s = open(dir.path(), options);
    s.append(&[0; 100]).unwrap();
    // One byte over the limit is refused, and nothing is written.
    assert!(!s.can_accept(101));
    match s.append(&[0; 101]) {
        Err(SpoolError::Full { needed, available }) => {
            assert_eq!((needed, available), (entry + 1, entry));
        }
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!((s.next_id(), s.pending()), (2, 1));
    // Exactly at the limit is accepted.
    assert!(s.can_accept(100));
    assert_eq!(s.append(&[0; 100]).unwrap(), 2);
    assert_eq!(s.bytes(), options.max_bytes);
    assert!(matches!(
        s.append(b""),
        Err(SpoolError::Full { available: 0, .. })
    ));
    // Acknowledging frees nothing until every entry of the segment is acknowledged.
    s.ack(1).unwrap();
    assert!(!s.can_accept(0));
    s.ack(2).unwrap();
    // Then the segment's room is reused: a new segment replaces it.
    assert_eq!(s.bytes(), options.max_bytes);
    assert!(s.can_accept(100));
    assert!(s.can_accept(s.max_payload_len()));
    assert_eq!(s.append(&[0; 100]).unwrap(), 3);
    assert_eq!(segment_files(dir.path()), vec![segment_name(3)]);
    assert_eq!(s.bytes(), HEADER_LEN + entry);
}

#[test]
fn a_payload_that_can_never_fit_is_too_large_not_full() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), SpoolOptions::default());
    let huge = vec![0u8; MAX_PAYLOAD_LEN + 1];
    assert!(matches!(
        s.append(&huge),
        Err(SpoolError::TooLarge { len, max }) if len == MAX_PAYLOAD_LEN + 1 && max == MAX_PAYLOAD_LEN
    ));
    drop(s);
    let tiny = SpoolOptions {
        segment_bytes: 1024,
        max_bytes: HEADER_LEN + ENTRY_HEADER_LEN + 10,
    };
    let mut s = open(dir.path(), tiny);
    assert_eq!(s.max_payload_len(), 10);
    assert!(matches!(
        s.append(&[0; 11]),
        Err(SpoolError::TooLarge { len: 11, max: 10 })
    ));
    assert_eq!(s.append(&[0; 10]).unwrap(), 1);
    assert_eq!(s.bytes(), tiny.max_bytes);
}

#[test]
fn append_many_is_all_or_nothing_and_rolls_inside_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let per_segment = HEADER_LEN + 2 * (ENTRY_HEADER_LEN + 4);
    let options = SpoolOptions {
        segment_bytes: per_segment,
        max_bytes: 2 * per_segment,
    };
    let mut s = open(dir.path(), options);
    let five: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 4]).collect();
    assert!(matches!(s.append_many(&five), Err(SpoolError::Full { .. })));
    assert_eq!((s.next_id(), s.bytes()), (1, 0));
    assert!(segment_files(dir.path()).is_empty());
    assert_eq!(s.append_many(&five[..4]).unwrap(), 1..5);
    assert_eq!(
        segment_files(dir.path()),
        vec![segment_name(1), segment_name(3)]
    );
    assert_eq!(s.bytes(), options.max_bytes);
    let got: Vec<Vec<u8>> = drain(&mut s).into_iter().map(|(_, p)| p).collect();
    assert_eq!(got, five[..4]);
    assert_eq!(s.append_many::<&[u8]>(&[]).unwrap(), 5..5);
}

#[test]
fn restart_keeps_pending_entries_and_ids_continue() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), small(100));
    for p in [b"a", b"b", b"c"] {
        s.append(p).unwrap();
    }
    s.ack(1).unwrap();
    drop(s);
    let (mut s, r) = Spool::open(dir.path(), small(100)).unwrap();
    assert_eq!(r.acked_file, AckedFile::Found(1));
    assert_eq!((r.acked, r.entries_recovered, r.next_id), (1, 2, 4));
    assert!(r.set_aside.is_empty());
    assert_eq!((r.tails_truncated, r.bytes_truncated), (0, 0));
    assert_eq!(drain(&mut s), vec![(2, b"b".to_vec()), (3, b"c".to_vec())]);
    assert_eq!(s.append(b"d").unwrap(), 4);
    s.ack(2).unwrap();
    s.ack(3).unwrap();
    s.ack(4).unwrap();
    drop(s);
    // The segment with nothing to deliver is removed on open; the watermark alone keeps ids
    // from being reused.
    let (mut s, r) = Spool::open(dir.path(), small(100)).unwrap();
    assert_eq!((r.next_id, r.entries_recovered, r.segments), (5, 0, 0));
    assert!(segment_files(dir.path()).is_empty());
    assert_eq!(s.append(b"e").unwrap(), 5);
}

#[test]
fn out_of_order_ack_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), SpoolOptions::default());
    assert!(matches!(
        s.ack(1),
        Err(SpoolError::OutOfOrderAck { id: 1, expected: 1 })
    ));
    s.append(b"a").unwrap();
    s.append(b"b").unwrap();
    assert!(matches!(
        s.ack(2),
        Err(SpoolError::OutOfOrderAck { id: 2, expected: 1 })
    ));
    assert_eq!(s.acked(), 0);
    s.ack(1).unwrap();
    // Acknowledging again is harmless; skipping ahead is not.
    s.ack(1).unwrap();
    assert!(matches!(
        s.ack(3),
        Err(SpoolError::OutOfOrderAck { id: 3, expected: 2 })
    ));
    assert_eq!((s.acked(), s.pending()), (1, 1));
}

#[test]
fn a_second_open_of_the_same_spool_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), SpoolOptions::default());
    assert!(matches!(
        Spool::open(dir.path(), SpoolOptions::default()),
        Err(SpoolError::Locked { .. })
    ));
    drop(s);
    Spool::open(dir.path(), SpoolOptions::default()).unwrap();
}

#[test]
fn open_creates_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("state").join("spool");
    let mut s = open(&spool_dir, SpoolOptions::default());
    s.append(b"x").unwrap();
    assert_eq!(segment_files(&spool_dir), vec![segment_name(1)]);
}

/// The example in docs/spool.md, byte for byte: a spool after `append(b"hi")` and `ack(1)`.
#[test]
fn on_disk_bytes_match_the_documented_example() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), SpoolOptions::default());
    s.append(b"hi").unwrap();
    let segment = std::fs::read(dir.path().join(segment_name(1))).unwrap();
    assert_eq!(
        hex(&segment),
        "4f5053504f4f4c000100000001000000000000001e48d020\
         02000000c2d99df501000000000000006869"
    );
    s.ack(1).unwrap();
    let acked = std::fs::read(dir.path().join("acked")).unwrap();
    assert_eq!(
        hex(&acked),
        "4f50535041434b00010000000100000000000000128ba98e"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
