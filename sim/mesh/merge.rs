//! When a host health change reaches the load balancer (`spec/mesh.md` §3.8; Envoy
//! `ClusterManagerImpl::scheduleUpdate` and `applyUpdates`, `common_lb_config.update_merge_window`,
//! 1 s by default and never set by istiod).
//!
//! A health-only change is applied at once when the cluster's previous delivery is more than
//! one window old; otherwise it is held and delivered one window after the first held change,
//! together with whatever arrives meanwhile. A change that comes when the window since the last
//! delivery has passed but a held delivery is still pending applies at once and cancels the
//! held one (`update_merge_cancelled`). Membership changes are never held. Envoy compares the
//! gap in whole milliseconds (`delta_ms > window_ms`), and so does this model.
//!
//! Invariant: at most one delivery is pending per cluster, and it is never later than one
//! window after the change that created it.

use crate::engine::{SimDuration, SimTime};

/// What to do with one health change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Apply it to the load balancer now.
    Now,
    /// Held: a delivery is now scheduled at this instant (the caller sets a timer for it).
    HeldUntil(SimTime),
    /// Held: it joins the delivery already scheduled at this instant.
    Joined(SimTime),
}

/// Counters named as Envoy's `cluster_manager.*` stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MergeStats {
    pub update_merge_cancelled: u64,
    pub update_out_of_merge_window: u64,
}

/// The merge state of one cluster (single priority).
#[derive(Clone, Debug)]
pub struct UpdateMerge {
    window: SimDuration,
    last_delivery: Option<SimTime>,
    pending: Option<SimTime>,
    stats: MergeStats,
}

impl Default for UpdateMerge {
    fn default() -> Self {
        UpdateMerge::new(SimDuration::from_secs(1))
    }
}

impl UpdateMerge {
    pub fn new(window: SimDuration) -> Self {
        UpdateMerge {
            window,
            last_delivery: None,
            pending: None,
            stats: MergeStats::default(),
        }
    }

    pub fn stats(&self) -> MergeStats {
        self.stats
    }

    /// The scheduled delivery, if one is pending.
    pub fn pending(&self) -> Option<SimTime> {
        self.pending
    }

    fn out_of_window(&self, now: SimTime) -> bool {
        match self.last_delivery {
            None => true,
            Some(last) => now.since(last).as_millis() > self.window.as_millis(),
        }
    }

    /// A host's health changed at `now` (an ejection or an unejection).
    pub fn health_changed(&mut self, now: SimTime) -> Delivery {
        if self.out_of_window(now) {
            self.stats.update_out_of_merge_window += 1;
            if self.pending.take().is_some() {
                self.stats.update_merge_cancelled += 1;
            }
            self.last_delivery = Some(now);
            return Delivery::Now;
        }
        match self.pending {
            Some(at) => Delivery::Joined(at),
            None => {
                let at = now + self.window;
                self.pending = Some(at);
                Delivery::HeldUntil(at)
            }
        }
    }

    /// Hosts were added or removed at `now`: delivered at once, cancelling a held delivery.
    pub fn membership_changed(&mut self, now: SimTime) {
        if self.pending.take().is_some() {
            self.stats.update_merge_cancelled += 1;
        }
        self.last_delivery = Some(now);
    }

    /// The timer set for a held delivery fired at `now`. Returns whether it delivers (a
    /// cancelled or superseded delivery's timer does nothing).
    pub fn timer_fired(&mut self, now: SimTime) -> bool {
        if self.pending == Some(now) {
            self.pending = None;
            self.last_delivery = Some(now);
            true
        } else {
            false
        }
    }
}
