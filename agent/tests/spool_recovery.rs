//! Crash and corruption tests of the disk spool on real files: torn tails cut at every offset,
//! bit flips, garbage headers, a corrupt `acked` file, stray temp files. In every case `open`
//! succeeds, what can be delivered is, and what was repaired is counted.
#![allow(clippy::unwrap_used)]

use outpost_agent::spool::format::{
    ACKED_MAGIC, ENTRY_HEADER_LEN, HEADER_LEN, SEGMENT_MAGIC, encode_header, segment_name,
};
use outpost_agent::spool::{AckedFile, Defect, Recovery, Spool, SpoolOptions};
use std::fs;
use std::path::Path;

/// Three entries of 10 bytes per segment.
fn options() -> SpoolOptions {
    SpoolOptions {
        segment_bytes: HEADER_LEN + 3 * (ENTRY_HEADER_LEN + 10),
        ..SpoolOptions::default()
    }
}

fn payload(id: u64) -> Vec<u8> {
    vec![id as u8; 10]
}

/// A spool holding entries `1..=n` (payload `payload(id)`), closed again.
fn fill(dir: &Path, n: u64) {
    let (mut s, _) = Spool::open(dir, options()).unwrap();
    for id in 1..=n {
        assert_eq!(s.append(&payload(id)).unwrap(), id);
    }
}

fn open(dir: &Path) -> (Spool, Recovery) {
    Spool::open(dir, options()).unwrap()
}

fn drain_ids(s: &mut Spool) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut after = None;
    while let Some(e) = s.next_unacked(after).unwrap() {
        assert_eq!(e.payload, payload(e.id), "entry {} came back changed", e.id);
        ids.push(e.id);
        after = Some(e.id);
    }
    ids
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Offset of entry `index` (0-based) in a segment of 10-byte entries.
fn entry_offset(index: u64) -> u64 {
    HEADER_LEN + index * (ENTRY_HEADER_LEN + 10)
}

#[test]
fn torn_last_entry_is_cut_at_every_offset() {
    let fixture = tempfile::tempdir().unwrap();
    fill(fixture.path(), 5); // segments 1 (entries 1-3) and 4 (entries 4-5)
    let first = fs::read(fixture.path().join(segment_name(1))).unwrap();
    let last = fs::read(fixture.path().join(segment_name(4))).unwrap();
    let start = entry_offset(1); // entry 5
    assert_eq!(last.len() as u64, entry_offset(2));

    for cut in start..last.len() as u64 {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(segment_name(1)), &first).unwrap();
        fs::write(dir.path().join(segment_name(4)), &last[..cut as usize]).unwrap();
        let (mut s, r) = open(dir.path());
        let torn = cut - start;
        assert_eq!(r.tails_truncated, u64::from(torn > 0), "cut at {cut}");
        assert_eq!(r.bytes_truncated, torn, "cut at {cut}");
        assert!(r.set_aside.is_empty(), "cut at {cut}");
        assert_eq!(r.entries_recovered, 4, "cut at {cut}");
        assert_eq!(drain_ids(&mut s), [1, 2, 3, 4], "cut at {cut}");
        let on_disk = fs::metadata(dir.path().join(segment_name(4)))
            .unwrap()
            .len();
        assert_eq!(
            on_disk, start,
            "cut at {cut}: the torn bytes are gone from the file"
        );
        // The torn entry's id was never confirmed, so it is given again, and appends continue
        // cleanly in the repaired segment.
        assert_eq!(s.append(&payload(5)).unwrap(), 5, "cut at {cut}");
        drop(s);
        let (mut s, r) = open(dir.path());
        assert_eq!(
            (r.tails_truncated, r.bytes_truncated),
            (0, 0),
            "cut at {cut}"
        );
        assert_eq!(drain_ids(&mut s), [1, 2, 3, 4, 5], "cut at {cut}");
    }
}

#[test]
fn zero_filled_tail_after_a_crash_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 2);
    let path = dir.path().join(segment_name(1));
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0u8; 300]);
    fs::write(&path, &bytes).unwrap();
    let (mut s, r) = open(dir.path());
    assert_eq!((r.tails_truncated, r.bytes_truncated), (1, 300));
    assert!(r.set_aside.is_empty());
    assert_eq!(drain_ids(&mut s), [1, 2]);
}

#[test]
fn bit_flip_in_a_middle_entry_sets_the_segment_aside_and_later_segments_are_delivered() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 9); // segments 1, 4, 7 of three entries each
    let path = dir.path().join(segment_name(4));
    let mut bytes = fs::read(&path).unwrap();
    let flipped = entry_offset(1) + ENTRY_HEADER_LEN + 3; // a payload byte of entry 5
    bytes[flipped as usize] ^= 0x04;
    fs::write(&path, &bytes).unwrap();

    let (mut s, r) = open(dir.path());
    assert_eq!(r.set_aside.len(), 1);
    let aside = &r.set_aside[0];
    assert_eq!(
        aside.path,
        dir.path().join(format!("{}.corrupt", segment_name(4)))
    );
    assert_eq!(aside.defect, Defect::Checksum);
    assert_eq!((aside.at, aside.entries_kept), (entry_offset(1), 1));
    // The damaged bytes are kept for an operator, unchanged.
    assert_eq!(fs::read(&aside.path).unwrap(), bytes);
    assert_eq!(r.entries_recovered, 7);
    // Entry 4, before the damage, is still delivered; 5 and 6 are not; 7-9 are.
    assert_eq!(drain_ids(&mut s), [1, 2, 3, 4, 7, 8, 9]);
    assert_eq!(s.pending(), 7);
    // Ids never go back to ones the damaged segment may have used.
    assert!(s.next_id() >= 10);
    // Acks follow delivery order across the gap.
    for id in [1, 2, 3, 4, 7, 8, 9] {
        s.ack(id).unwrap();
    }
    assert_eq!(s.pending(), 0);
    drop(s);
    let (_, r) = open(dir.path());
    assert!(
        r.set_aside.is_empty(),
        "a set-aside file is left alone on the next start"
    );
    assert!(names(dir.path()).contains(&format!("{}.corrupt", segment_name(4))));
}

#[test]
fn bit_flip_in_the_newest_segment_keeps_the_entries_before_it_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 6); // segments 1 and 4
    let path = dir.path().join(segment_name(4));
    let mut bytes = fs::read(&path).unwrap();
    bytes[(entry_offset(1) + ENTRY_HEADER_LEN) as usize] ^= 1; // entry 5; entry 6 follows
    fs::write(&path, &bytes).unwrap();
    let (mut s, r) = open(dir.path());
    assert_eq!(r.set_aside.len(), 1);
    assert_eq!(r.set_aside[0].entries_kept, 1);
    assert_eq!(r.tails_truncated, 0);
    let next = s.append(&payload(0)).unwrap();
    assert!(next > 6, "id {next} may collide with the set-aside entry 6");
    let mut after = None;
    let mut ids = Vec::new();
    while let Some(e) = s.next_unacked(after).unwrap() {
        ids.push(e.id);
        after = Some(e.id);
    }
    assert_eq!(ids, [1, 2, 3, 4, next]);
}

#[test]
fn garbage_segment_header_sets_the_whole_segment_aside() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 9);
    let path = dir.path().join(segment_name(4));
    let mut bytes = fs::read(&path).unwrap();
    bytes[..8].copy_from_slice(b"GARBAGE!");
    fs::write(&path, &bytes).unwrap();

    let (mut s, r) = open(dir.path());
    assert_eq!(r.set_aside.len(), 1);
    assert_eq!(r.set_aside[0].defect, Defect::BadMagic);
    assert_eq!(r.set_aside[0].entries_kept, 0);
    assert!(!path.exists());
    assert_eq!(fs::read(&r.set_aside[0].path).unwrap(), bytes);
    assert_eq!(drain_ids(&mut s), [1, 2, 3, 7, 8, 9]);
}

#[test]
fn garbage_header_on_the_newest_segment_never_leads_to_reused_ids() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 5);
    let path = dir.path().join(segment_name(4));
    let mut bytes = fs::read(&path).unwrap();
    bytes[20] ^= 0xff; // header checksum
    fs::write(&path, &bytes).unwrap();
    let (mut s, r) = open(dir.path());
    assert_eq!(r.set_aside.len(), 1);
    assert_eq!(r.set_aside[0].defect, Defect::HeaderChecksum);
    assert!(r.next_id > 5);
    let id = s.append(&payload(0)).unwrap();
    assert_eq!(id, r.next_id);
    assert!(dir.path().join(segment_name(id)).exists());
    assert_eq!(s.next_unacked(Some(3)).unwrap().unwrap().id, id);
}

#[test]
fn segment_whose_header_disagrees_with_its_name_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 6);
    fs::rename(
        dir.path().join(segment_name(4)),
        dir.path().join(segment_name(5)),
    )
    .unwrap();
    let (mut s, r) = open(dir.path());
    assert_eq!(r.set_aside.len(), 1);
    assert_eq!(
        r.set_aside[0].defect,
        Defect::NameMismatch { header: 4, name: 5 }
    );
    assert_eq!(drain_ids(&mut s), [1, 2, 3]);
}

#[test]
fn corrupt_acked_file_counts_as_zero_and_entries_are_delivered_again() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 5);
    {
        let (mut s, _) = open(dir.path());
        for id in 1..=4 {
            s.ack(id).unwrap();
        }
        assert_eq!(s.pending(), 1);
    }
    // Segment 1 (entries 1-3) is gone; segment 4 holds 4 (acknowledged) and 5.
    fs::write(dir.path().join("acked"), b"not a watermark").unwrap();
    let (mut s, r) = open(dir.path());
    assert!(matches!(r.acked_file, AckedFile::Corrupt(_)));
    assert_eq!(r.acked, 0);
    // At least once: 4 comes again, nothing is lost.
    assert_eq!(drain_ids(&mut s), [4, 5]);
    assert_eq!(s.oldest_unacked(), Some(4));
    s.ack(4).unwrap();
    s.ack(5).unwrap();
    assert_eq!(s.append(&payload(6)).unwrap(), 6);
}

#[test]
fn missing_acked_file_delivers_everything_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 2);
    let (mut s, r) = open(dir.path());
    assert_eq!(r.acked_file, AckedFile::Missing);
    assert_eq!(drain_ids(&mut s), [1, 2]);
}

#[test]
fn segments_fully_acknowledged_before_a_crash_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 5);
    // As if the watermark reached 3 and the process died before deleting segment 1.
    fs::write(dir.path().join("acked"), encode_header(ACKED_MAGIC, 3)).unwrap();
    let (mut s, r) = open(dir.path());
    assert_eq!((r.acked, r.segments_removed, r.segments), (3, 1, 1));
    assert!(!dir.path().join(segment_name(1)).exists());
    assert_eq!(drain_ids(&mut s), [4, 5]);
}

#[test]
fn stray_temp_files_and_empty_segments_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 2);
    fs::write(dir.path().join(".acked.tmp"), b"half").unwrap();
    fs::write(dir.path().join(format!(".{}.tmp", segment_name(3))), b"x").unwrap();
    // A segment created just before a crash, with no entry yet.
    fs::write(
        dir.path().join(segment_name(9)),
        encode_header(SEGMENT_MAGIC, 9),
    )
    .unwrap();
    fs::write(dir.path().join("NOTES"), b"an operator's file").unwrap();

    let (mut s, r) = open(dir.path());
    assert_eq!((r.temp_files_removed, r.segments_removed), (2, 1));
    assert!(r.set_aside.is_empty());
    assert_eq!(
        names(dir.path()),
        ["00000000000000000001.seg", "NOTES", "lock"]
    );
    assert_eq!(drain_ids(&mut s), [1, 2]);
    // Id 9 was claimed by the empty segment's header.
    assert_eq!(s.append(b"next").unwrap(), 9);
}
