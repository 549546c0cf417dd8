//! A play's places: how many of its operations run at once (`-c`) and how many on each
//! ship (`max_operations`), taken together, with two priorities. An instance's own turn
//! (its start, stop...) comes first; work done ahead (creating the container of an
//! instance whose dependencies are not ready yet) only takes a place that no turn waiting
//! now can use, so creating ahead never delays the start of an instance whose
//! dependencies are ready.

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

/// The places of one play.
pub struct Budget {
    inner: Mutex<Inner>,
}

struct Inner {
    /// Free places of the play (`usize::MAX`: no limit of its own).
    play: usize,
    /// Free places by ship.
    ships: Vec<usize>,
    /// Who waits, in arrival order.
    queue: Vec<Waiter>,
}

struct Waiter {
    priority: Priority,
    ship: Option<usize>,
    grant: oneshot::Sender<Place>,
}

impl Inner {
    fn fits(&self, ship: Option<usize>) -> bool {
        self.play > 0 && ship.is_none_or(|s| self.ships.get(s).is_none_or(|&n| n > 0))
    }

    fn take(&mut self, ship: Option<usize>) {
        self.play = self.play.saturating_sub(1);
        if let Some(n) = ship.and_then(|s| self.ships.get_mut(s)) {
            *n -= 1;
        }
    }

    fn give_back(&mut self, ship: Option<usize>) {
        self.play = self.play.saturating_add(1);
        if let Some(n) = ship.and_then(|s| self.ships.get_mut(s)) {
            *n += 1;
        }
    }
}

/// A place held; given back when dropped.
pub struct Place {
    budget: Option<Arc<Budget>>,
    ship: Option<usize>,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(budget) = self.budget.take() {
            let mut inner = budget.lock();
            inner.give_back(self.ship);
            Budget::dispatch(&budget, &mut inner);
        }
    }
}

impl Budget {
    /// `play`: at most so many at once (`None`: no limit of the play's own); `ships[s]`:
    /// at most so many on ship `s`.
    pub fn new(play: Option<usize>, ships: Vec<usize>) -> Arc<Self> {
        Arc::new(Budget {
            inner: Mutex::new(Inner {
                play: play.unwrap_or(usize::MAX),
                ships,
                queue: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a place of the play and of `ship` (`None`: the play's only).
    pub async fn acquire(self: &Arc<Self>, ship: Option<usize>, priority: Priority) -> Place {
        let (grant, granted) = oneshot::channel();
        {
            let mut inner = self.lock();
            inner.queue.push(Waiter {
                priority,
                ship,
                grant,
            });
            Budget::dispatch(self, &mut inner);
        }
        match granted.await {
            Ok(place) => place,
            // Cannot happen: a waiter leaves the queue only when granted, and the budget
            // outlives it (the waiter holds it). Were it to, nothing is counted.
            Err(_) => Place { budget: None, ship },
        }
    }

    /// Gives free places to waiters: every turn that fits, in arrival order, then work
    /// ahead with what is left. A waiter that gave up (its future dropped) gives its place
    /// back at once.
    fn dispatch(budget: &Arc<Budget>, inner: &mut Inner) {
        for priority in [Priority::Turn, Priority::Ahead] {
            let mut i = 0;
            while i < inner.queue.len() {
                let waiter = &inner.queue[i];
                if waiter.priority != priority || !inner.fits(waiter.ship) {
                    i += 1;
                    continue;
                }
                let waiter = inner.queue.remove(i);
                inner.take(waiter.ship);
                let place = Place {
                    budget: Some(budget.clone()),
                    ship: waiter.ship,
                };
                if let Err(mut unwanted) = waiter.grant.send(place) {
                    // Its drop would lock the budget again: given back here instead.
                    unwanted.budget = None;
                    inner.give_back(waiter.ship);
                }
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
        assert_eq!((inner.play, inner.ships.clone()), (1, vec![1, 4]));
        assert!(inner.queue.is_empty());
    }
}
