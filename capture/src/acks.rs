//! At-least-once bookkeeping: which WAL position may be confirmed to the replication slot.
//!
//! Every transaction read from the slot gets an entry when it begins; each event produced for it
//! adds one outstanding delivery, each broker acknowledgement removes one, and its commit seals it
//! with the commit's end LSN. The confirmable position is the end LSN of the newest transaction such
//! that it and every earlier one are sealed with no outstanding delivery, so the slot never moves
//! past an event the broker has not acknowledged, whatever order acknowledgements arrive in.
//!
//! When nothing is open or in flight, a position the server reports without data (a keepalive's WAL
//! end, a heartbeat message) is confirmable too: that is what keeps an idle or filtered slot from
//! retaining WAL.
//!
//! The tracker also remembers each transaction's commit timestamp, and hands out the timestamps of
//! the transactions whose events the broker has all acknowledged (for the commit → acknowledged
//! latency metric).

use std::collections::BTreeMap;

use cdcstar_crds::envelope::Lsn;

/// Identifies a transaction in the tracker.
pub type TxId = u64;

#[derive(Debug, Clone, Copy)]
struct Entry {
    outstanding: usize,
    /// Events handed to the producer.
    events: usize,
    /// End LSN of the commit once it was read.
    sealed_at: Option<Lsn>,
    /// Commit timestamp (microseconds since the Postgres epoch).
    commit_time_micros: i64,
}

impl Entry {
    /// Sealed, with events, all acknowledged.
    fn fully_acknowledged(&self) -> bool {
        self.outstanding == 0 && self.events > 0 && self.sealed_at.is_some()
    }
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct AckTracker {
    next_id: TxId,
    open: BTreeMap<TxId, Entry>,
    confirmable: Lsn,
    failure: Option<String>,
    /// Commit timestamps of transactions whose events were all acknowledged, not yet taken.
    acknowledged_commits: Vec<i64>,
}

impl AckTracker {
    /// A tracker whose confirmable position starts at `confirmed` (the slot's current position).
    pub fn new(confirmed: Lsn) -> Self {
        Self {
            confirmable: confirmed,
            ..Self::default()
        }
    }

    /// A transaction committed at `commit_time_micros` (Postgres epoch) started.
    pub fn begin(&mut self, commit_time_micros: i64) -> TxId {
        let id = self.next_id;
        self.next_id += 1;
        self.open.insert(
            id,
            Entry {
                outstanding: 0,
                events: 0,
                sealed_at: None,
                commit_time_micros,
            },
        );
        id
    }

    /// An event of transaction `id` was handed to the producer.
    pub fn sent(&mut self, id: TxId) {
        if let Some(entry) = self.open.get_mut(&id) {
            entry.outstanding += 1;
            entry.events += 1;
        }
    }

    /// The broker acknowledged an event of transaction `id`.
    pub fn delivered(&mut self, id: TxId) {
        if let Some(entry) = self.open.get_mut(&id) {
            entry.outstanding = entry.outstanding.saturating_sub(1);
            if entry.fully_acknowledged() {
                self.acknowledged_commits.push(entry.commit_time_micros);
            }
        }
        self.advance();
    }

    /// Commit timestamps (Postgres epoch microseconds) of the transactions whose events were all
    /// acknowledged since the last call, each once.
    pub fn take_acknowledged_commits(&mut self) -> Vec<i64> {
        std::mem::take(&mut self.acknowledged_commits)
    }

    /// An event of transaction `id` could not be delivered: nothing may be confirmed any more.
    pub fn failed(&mut self, reason: String) {
        self.failure.get_or_insert(reason);
    }

    /// The commit of transaction `id` was read; `end_lsn` is just past its commit record.
    pub fn commit(&mut self, id: TxId, end_lsn: Lsn) {
        if let Some(entry) = self.open.get_mut(&id) {
            entry.sealed_at = Some(end_lsn);
            if entry.fully_acknowledged() {
                self.acknowledged_commits.push(entry.commit_time_micros);
            }
        }
        self.advance();
    }

    /// The server reported `lsn` outside any transaction (keepalive, heartbeat message).
    pub fn idle_position(&mut self, lsn: Lsn) {
        if self.open.is_empty() && self.failure.is_none() && lsn > self.confirmable {
            self.confirmable = lsn;
        }
    }

    /// The position that may be confirmed to the slot.
    pub fn confirmable(&self) -> Lsn {
        self.confirmable
    }

    /// Why a delivery failed, if one did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Events handed to the producer and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.open.values().map(|entry| entry.outstanding).sum()
    }

    fn advance(&mut self) {
        if self.failure.is_some() {
            return;
        }
        while let Some(entry) = self.open.first_entry() {
            match entry.get() {
                Entry {
                    outstanding: 0,
                    sealed_at: Some(end),
                    ..
                } => {
                    self.confirmable = self.confirmable.max(*end);
                    entry.remove();
                }
                _ => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Begins a transaction committed at `commit_time_micros` and sends `events` of its events.
    fn begin_sending(tracker: &mut AckTracker, commit_time_micros: i64, events: usize) -> TxId {
        let tx = tracker.begin(commit_time_micros);
        for _ in 0..events {
            tracker.sent(tx);
        }
        tx
    }

    #[test]
    fn a_transaction_is_confirmable_only_after_commit_and_every_ack() {
        let mut tracker = AckTracker::new(Lsn(10));
        let tx = begin_sending(&mut tracker, 0, 2);
        tracker.delivered(tx);
        assert_eq!(tracker.confirmable(), Lsn(10));
        tracker.commit(tx, Lsn(50));
        assert_eq!(tracker.confirmable(), Lsn(10), "one delivery outstanding");
        tracker.delivered(tx);
        assert_eq!(tracker.confirmable(), Lsn(50));
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn a_later_transaction_acked_first_waits_for_the_earlier_one() {
        let mut tracker = AckTracker::new(Lsn(0));
        let first = begin_sending(&mut tracker, 0, 1);
        tracker.commit(first, Lsn(100));
        let second = begin_sending(&mut tracker, 0, 1);
        tracker.commit(second, Lsn(200));
        tracker.delivered(second);
        assert_eq!(tracker.confirmable(), Lsn(0));
        tracker.delivered(first);
        assert_eq!(tracker.confirmable(), Lsn(200));
    }

    #[test]
    fn an_empty_transaction_is_confirmable_at_commit() {
        let mut tracker = AckTracker::new(Lsn(0));
        let tx = tracker.begin(0);
        tracker.commit(tx, Lsn(30));
        assert_eq!(tracker.confirmable(), Lsn(30));
    }

    #[test]
    fn idle_positions_count_only_when_nothing_is_open() {
        let mut tracker = AckTracker::new(Lsn(5));
        tracker.idle_position(Lsn(40));
        assert_eq!(tracker.confirmable(), Lsn(40));
        let tx = tracker.begin(0);
        tracker.idle_position(Lsn(90));
        assert_eq!(tracker.confirmable(), Lsn(40), "a transaction is open");
        tracker.commit(tx, Lsn(95));
        tracker.idle_position(Lsn(60));
        assert_eq!(tracker.confirmable(), Lsn(95), "never moves backwards");
    }

    #[test]
    fn commit_times_are_handed_out_once_when_every_event_is_acknowledged() {
        let mut tracker = AckTracker::new(Lsn(0));
        let acked_before_commit = begin_sending(&mut tracker, 100, 1);
        tracker.delivered(acked_before_commit);
        assert!(
            tracker.take_acknowledged_commits().is_empty(),
            "not sealed yet"
        );
        tracker.commit(acked_before_commit, Lsn(10));
        let acked_after_commit = begin_sending(&mut tracker, 200, 2);
        tracker.commit(acked_after_commit, Lsn(20));
        tracker.delivered(acked_after_commit);
        assert_eq!(tracker.take_acknowledged_commits(), vec![100]);
        tracker.delivered(acked_after_commit);
        let empty = tracker.begin(300);
        tracker.commit(empty, Lsn(30));
        assert_eq!(
            tracker.take_acknowledged_commits(),
            vec![200],
            "no events, no sample"
        );
        assert!(tracker.take_acknowledged_commits().is_empty());
    }

    #[test]
    fn a_failed_delivery_freezes_the_position() {
        let mut tracker = AckTracker::new(Lsn(0));
        let tx = begin_sending(&mut tracker, 0, 2);
        tracker.failed("broker down".into());
        tracker.delivered(tx);
        tracker.delivered(tx);
        tracker.commit(tx, Lsn(10));
        tracker.idle_position(Lsn(20));
        assert_eq!(tracker.confirmable(), Lsn(0));
        assert_eq!(tracker.failure(), Some("broker down"));
    }
}
