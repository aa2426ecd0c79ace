//! Every alarm's state, since when, why, its last datapoints and its bounded history; applying
//! an evaluation yields the transition to notify, if the state changed. Pure: time passed in.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::alarm::eval::{AlarmState, Datapoint, Outcome};

/// Transitions kept per alarm; older ones are dropped.
pub const MAX_HISTORY: usize = 100;

/// Identifies one alarm: a rule, and the host for a per-host rule (`None` for a fleet rule).
pub type AlarmKey = (String, Option<String>);

/// One state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// The rule's name.
    pub alarm: String,
    /// The host, `None` for a fleet alarm.
    pub host: Option<String>,
    /// The state before.
    pub old_state: AlarmState,
    /// The state after.
    pub new_state: AlarmState,
    /// Why.
    pub reason: String,
    /// When it was decided (the sink's clock), unix milliseconds.
    pub time_ms: i64,
}

/// One alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmRecord {
    /// The rule's name.
    pub alarm: String,
    /// The host, `None` for a fleet alarm.
    pub host: Option<String>,
    /// The current state.
    pub state: AlarmState,
    /// Since when (the transition into it), unix milliseconds.
    pub since_ms: i64,
    /// The reason of the latest evaluation.
    pub reason: String,
    /// The datapoints of the latest evaluation, oldest first.
    pub datapoints: Vec<Datapoint>,
    /// When it was last evaluated, unix milliseconds.
    pub evaluated_ms: i64,
    /// The latest transitions, oldest first, at most [`MAX_HISTORY`].
    pub history: VecDeque<Transition>,
}

/// All alarms, by rule name then host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlarmBook {
    records: BTreeMap<AlarmKey, AlarmRecord>,
}

impl AlarmBook {
    /// A book holding `records` (as loaded from disk).
    pub fn from_records(records: impl IntoIterator<Item = AlarmRecord>) -> Self {
        Self {
            records: records
                .into_iter()
                .map(|r| ((r.alarm.clone(), r.host.clone()), r))
                .collect(),
        }
    }

    /// The current state of `key`; an alarm never evaluated is INSUFFICIENT_DATA.
    pub fn state(&self, key: &AlarmKey) -> AlarmState {
        self.records
            .get(key)
            .map_or(AlarmState::InsufficientData, |r| r.state)
    }

    /// Record `outcome` of evaluating `key` over `datapoints` at `now_ms`; the transition if the
    /// state changed (a new alarm starts in INSUFFICIENT_DATA, as in CloudWatch).
    pub fn apply(
        &mut self,
        key: &AlarmKey,
        outcome: Outcome,
        datapoints: Vec<Datapoint>,
        now_ms: i64,
    ) -> Option<Transition> {
        let record = self
            .records
            .entry(key.clone())
            .or_insert_with(|| AlarmRecord {
                alarm: key.0.clone(),
                host: key.1.clone(),
                state: AlarmState::InsufficientData,
                since_ms: now_ms,
                reason: "Unchecked: initial alarm creation".into(),
                datapoints: Vec::new(),
                evaluated_ms: now_ms,
                history: VecDeque::new(),
            });
        record.datapoints = datapoints;
        record.evaluated_ms = now_ms;
        record.reason = outcome.reason;
        if record.state == outcome.state {
            return None;
        }
        let transition = Transition {
            alarm: record.alarm.clone(),
            host: record.host.clone(),
            old_state: record.state,
            new_state: outcome.state,
            reason: record.reason.clone(),
            time_ms: now_ms,
        };
        record.state = outcome.state;
        record.since_ms = now_ms;
        if record.history.len() == MAX_HISTORY {
            record.history.pop_front();
        }
        record.history.push_back(transition.clone());
        Some(transition)
    }

    /// Keep only the alarms for which `keep` holds (drops alarms of rules no longer in the file).
    pub fn retain(&mut self, mut keep: impl FnMut(&AlarmKey) -> bool) {
        self.records.retain(|k, _| keep(k));
    }

    /// Every alarm, by rule name then host.
    pub fn records(&self) -> impl Iterator<Item = &AlarmRecord> {
        self.records.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn outcome(state: AlarmState) -> Outcome {
        Outcome {
            state,
            reason: format!("to {state}"),
        }
    }

    fn key() -> AlarmKey {
        ("cpu-high".into(), Some("web-1".into()))
    }

    #[test]
    fn a_new_alarm_starts_insufficient_and_only_changes_are_transitions() {
        let mut book = AlarmBook::default();
        assert_eq!(book.state(&key()), AlarmState::InsufficientData);
        let first = book.apply(&key(), outcome(AlarmState::Ok), vec![], 10);
        assert_eq!(
            first.map(|t| (t.old_state, t.new_state, t.time_ms)),
            Some((AlarmState::InsufficientData, AlarmState::Ok, 10))
        );
        assert_eq!(
            book.apply(&key(), outcome(AlarmState::Ok), vec![], 20),
            None
        );
        let record = book.records().next().unwrap();
        assert_eq!((record.since_ms, record.evaluated_ms), (10, 20));
        let alarm = book
            .apply(&key(), outcome(AlarmState::Alarm), vec![], 30)
            .unwrap();
        assert_eq!(alarm.reason, "to ALARM");
        assert_eq!(book.records().next().unwrap().history.len(), 2);
    }

    proptest! {
        #[test]
        fn history_is_bounded_and_follows_the_states(
            states in proptest::collection::vec(0u8..3, 0..300),
        ) {
            let mut book = AlarmBook::default();
            let mut model = AlarmState::InsufficientData;
            let mut changes = Vec::new();
            for (t, s) in states.iter().enumerate() {
                let state = [AlarmState::Ok, AlarmState::Alarm, AlarmState::InsufficientData]
                    [*s as usize];
                let transition = book.apply(&key(), outcome(state), vec![], t as i64);
                prop_assert_eq!(transition.is_some(), state != model);
                if state != model {
                    changes.push((model, state, t as i64));
                }
                model = state;
                prop_assert_eq!(book.state(&key()), model);
            }
            if let Some(record) = book.records().next() {
                let kept: Vec<_> = record
                    .history
                    .iter()
                    .map(|t| (t.old_state, t.new_state, t.time_ms))
                    .collect();
                let from = changes.len().saturating_sub(MAX_HISTORY);
                prop_assert_eq!(kept, changes[from..].to_vec());
            }
        }
    }
}
