//! A play's places: how many of its operations run at once (`-c`) and how many on each
//! ship (`max_operations`), taken together, with two priorities. An instance's own turn
//! (its start, stop...) comes first; work done ahead (creating the container of an
//! instance whose dependencies are not ready yet) only takes a place that no turn waiting
//! at that moment can use. It is not pre-empted: a turn that becomes ready just after an
//! ahead create took its ship's last place waits for that one create to end (one engine
//! request, bounded like any other). No place is kept back for turns instead: on a ship
//! with `max_operations: 1` nothing could then be created ahead at all, and a held-back
//! place would idle whenever no turn comes.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Which queue a request for a place joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// An instance's turn: served first, in arrival order.
    Turn,
    /// Work ahead of an instance's turn: served only with what turns leave free.
    Ahead,
}

impl Priority {
    fn index(self) -> usize {
        match self {
            Priority::Turn => 0,
            Priority::Ahead => 1,
        }
    }
}

/// The places of one play.
pub struct Budget {
    inner: Mutex<Inner>,
}

/// Who waits is kept by ship and priority, each in arrival order, so that granting costs
/// no scan of everyone waiting (a play of 200,000 instances queues most of them). Only a
/// lane whose ship has a free place and whose queue is not empty can be served: the
/// first waiter of each such lane is indexed by arrival, so the play's places (`-c`) go
/// to the earliest of them, whichever ship it is on.
struct Inner {
    /// Free places of the play (`usize::MAX`: no limit of its own).
    play: usize,
    /// The lanes: one per ship, then one without a limit (for requests naming no ship,
    /// or a ship without one).
    lanes: Vec<Lane>,
    /// The first waiter of every lane that can be served, by priority: (arrival, lane).
    ready: [BTreeSet<(u64, usize)>; 2],
    /// The next arrival number.
    arrivals: u64,
}

struct Lane {
    /// Free places (`usize::MAX`: no limit).
    free: usize,
    /// Who waits, by priority, in arrival order.
    queues: [VecDeque<Waiter>; 2],
    /// What this lane has in `ready`, by priority.
    indexed: [Option<u64>; 2],
}

struct Waiter {
    arrival: u64,
    grant: oneshot::Sender<Place>,
}

impl Inner {
    /// The lane of a request on `ship`.
    fn lane(&self, ship: Option<usize>) -> usize {
        let unlimited = self.lanes.len() - 1;
        ship.filter(|&s| s < unlimited).unwrap_or(unlimited)
    }

    /// Brings the lane's entries in `ready` up to date with its queues and free places.
    fn refresh(&mut self, lane: usize) {
        let Inner { lanes, ready, .. } = self;
        let l = &mut lanes[lane];
        for ((ready, indexed), queue) in ready.iter_mut().zip(&mut l.indexed).zip(&l.queues) {
            if let Some(arrival) = indexed.take() {
                ready.remove(&(arrival, lane));
            }
            if l.free > 0
                && let Some(first) = queue.front()
            {
                ready.insert((first.arrival, lane));
                *indexed = Some(first.arrival);
            }
        }
    }

    fn give_back(&mut self, lane: usize) {
        self.play = self.play.saturating_add(1);
        let l = &mut self.lanes[lane];
        l.free = l.free.saturating_add(1);
        self.refresh(lane);
    }
}

/// A place held; given back when dropped.
pub struct Place {
    budget: Option<Arc<Budget>>,
    lane: usize,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(budget) = self.budget.take() {
            let mut inner = budget.lock();
            inner.give_back(self.lane);
            Budget::dispatch(&budget, &mut inner);
        }
    }
}

impl Budget {
    /// `play`: at most so many at once (`None`: no limit of the play's own); `ships[s]`:
    /// at most so many on ship `s`.
    pub fn new(play: Option<usize>, ships: Vec<usize>) -> Arc<Self> {
        let lane = |free| Lane {
            free,
            queues: Default::default(),
            indexed: [None; 2],
        };
        let lanes = ships.into_iter().chain([usize::MAX]).map(lane).collect();
        Arc::new(Budget {
            inner: Mutex::new(Inner {
                play: play.unwrap_or(usize::MAX),
                lanes,
                ready: Default::default(),
                arrivals: 0,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a place of the play and of `ship` (`None`: the play's only).
    pub async fn acquire(self: &Arc<Self>, ship: Option<usize>, priority: Priority) -> Place {
        let granted = self.request(ship, priority);
        match granted.await {
            Ok(place) => place,
            // Cannot happen: a waiter leaves its queue only when granted, and the budget
            // outlives it (the waiter holds it). Were it to, nothing is counted.
            Err(_) => Place {
                budget: None,
                lane: 0,
            },
        }
    }

    /// Joins the queue (granted at once if a place is free); the place comes on the
    /// receiver.
    pub fn request(
        self: &Arc<Self>,
        ship: Option<usize>,
        priority: Priority,
    ) -> oneshot::Receiver<Place> {
        let (grant, granted) = oneshot::channel();
        let mut inner = self.lock();
        let lane = inner.lane(ship);
        let arrival = inner.arrivals;
        inner.arrivals += 1;
        inner.lanes[lane].queues[priority.index()].push_back(Waiter { arrival, grant });
        inner.refresh(lane);
        Budget::dispatch(self, &mut inner);
        granted
    }

    /// Gives free places to waiters: the earliest turn that fits, as long as one does,
    /// then work ahead with what is left. A waiter that gave up (its future dropped)
    /// gives its place back at once. Costs nothing when the play has no free place, and
    /// a logarithm per grant otherwise.
    fn dispatch(budget: &Arc<Budget>, inner: &mut Inner) {
        while inner.play > 0 {
            // Turns first: work ahead only when no turn can be served.
            let Some((p, lane)) = (0..2).find_map(|p| inner.ready[p].first().map(|&(_, l)| (p, l)))
            else {
                return;
            };
            let Some(waiter) = inner.lanes[lane].queues[p].pop_front() else {
                // Cannot happen: a lane is ready only with a waiter.
                inner.refresh(lane);
                continue;
            };
            inner.play -= 1;
            inner.lanes[lane].free -= 1;
            inner.refresh(lane);
            let place = Place {
                budget: Some(budget.clone()),
                lane,
            };
            if let Err(mut unwanted) = waiter.grant.send(place) {
                // Its drop would lock the budget again: given back here instead.
                unwanted.budget = None;
                inner.give_back(lane);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A turn that arrives after work ahead still gets the next free place first.
    #[tokio::test]
    async fn turns_come_before_work_ahead() {
        let budget = Budget::new(None, vec![1]);
        let held = budget.acquire(Some(0), Priority::Turn).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let ahead = {
            let (budget, order) = (budget.clone(), order.clone());
            tokio::spawn(async move {
                let _p = budget.acquire(Some(0), Priority::Ahead).await;
                order.lock().unwrap().push("ahead");
            })
        };
        tokio::task::yield_now().await;
        let turn = {
            let (budget, order) = (budget.clone(), order.clone());
            tokio::spawn(async move {
                let _p = budget.acquire(Some(0), Priority::Turn).await;
                order.lock().unwrap().push("turn");
            })
        };
        tokio::task::yield_now().await;
        drop(held);
        turn.await.unwrap();
        ahead.await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["turn", "ahead"]);
    }

    /// The play's limit and a ship's hold together; a waiter that gives up loses nothing.
    #[tokio::test]
    async fn both_limits_hold_and_a_dropped_waiter_gives_its_place_back() {
        let budget = Budget::new(Some(2), vec![1, 5]);
        let a = budget.acquire(Some(0), Priority::Turn).await;
        // Ship 0 is full: this one waits, and is then dropped.
        let waiting = budget.acquire(Some(0), Priority::Turn);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), waiting)
                .await
                .is_err()
        );
        let b = budget.acquire(Some(1), Priority::Ahead).await;
        // The play is full.
        let third = budget.acquire(Some(1), Priority::Turn);
        tokio::pin!(third);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), &mut third)
                .await
                .is_err()
        );
        drop(a);
        let _c = third.await;
        drop(b);
        let inner = budget.lock();
        let free: Vec<usize> = inner.lanes[..2].iter().map(|l| l.free).collect();
        assert_eq!((inner.play, free), (1, vec![1, 4]));
        assert!(
            inner
                .lanes
                .iter()
                .all(|l| l.queues.iter().all(VecDeque::is_empty))
        );
        assert!(inner.ready.iter().all(BTreeSet::is_empty));
    }

    /// Many ships, both priorities, the play's limit, waiters that give up: after every
    /// step, exactly the waiters that the rule picks hold places. The rule, written as
    /// plainly as possible (a scan of everyone waiting, in arrival order: turns that fit,
    /// then work ahead that fits), is the model the per-ship queues must agree with.
    #[test]
    fn places_go_where_a_scan_of_everyone_waiting_would_give_them() {
        const SHIPS: usize = 12;
        for (play, per_ship, seed) in [
            (Some(3), 1, 1u64),
            (Some(7), 2, 2),
            (None, 1, 3),
            (Some(1), 3, 4),
            (Some(40), 2, 5),
        ] {
            let budget = Budget::new(play, vec![per_ship; SHIPS]);
            let mut rng = seed;
            let mut next = move |n: u64| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng % n
            };
            // The model: who waits (arrival order) and what is free.
            struct Wants {
                ship: Option<usize>,
                priority: Priority,
                granted: oneshot::Receiver<Place>,
            }
            let mut waiting: Vec<Wants> = Vec::new();
            let mut held: Vec<(Option<usize>, Place)> = Vec::new();
            let mut free_play = play.unwrap_or(usize::MAX);
            let mut free = [per_ship; SHIPS];
            for step in 0..3000 {
                match next(10) {
                    // Arrives (on a ship, or none).
                    0..=5 => {
                        let ship = (next(SHIPS as u64 + 1) as usize).checked_sub(1);
                        let priority = [Priority::Turn, Priority::Ahead][next(2) as usize];
                        let granted = budget.request(ship, priority);
                        waiting.push(Wants {
                            ship,
                            priority,
                            granted,
                        });
                    }
                    // Gives up waiting.
                    6 if !waiting.is_empty() => {
                        waiting.remove(next(waiting.len() as u64) as usize);
                    }
                    // Ends what it held.
                    _ if !held.is_empty() => {
                        let (ship, place) = held.swap_remove(next(held.len() as u64) as usize);
                        drop(place);
                        free_play = free_play.saturating_add(1);
                        if let Some(s) = ship {
                            free[s] += 1;
                        }
                    }
                    _ => continue,
                }
                // What the model grants now.
                let mut expected = Vec::new();
                for priority in [Priority::Turn, Priority::Ahead] {
                    for (i, w) in waiting.iter().enumerate() {
                        let fits = free_play > 0 && w.ship.is_none_or(|s| free[s] > 0);
                        if w.priority == priority && fits {
                            free_play = free_play.saturating_sub(1);
                            if let Some(s) = w.ship {
                                free[s] -= 1;
                            }
                            expected.push(i);
                        }
                    }
                }
                expected.sort_unstable();
                let mut got = Vec::new();
                let mut still = Vec::new();
                for (i, mut w) in waiting.drain(..).enumerate() {
                    match w.granted.try_recv() {
                        Ok(place) => {
                            got.push(i);
                            held.push((w.ship, place));
                        }
                        Err(_) => still.push(w),
                    }
                }
                waiting = still;
                assert_eq!(got, expected, "play {play:?}, seed {seed}, step {step}");
            }
        }
    }
}
