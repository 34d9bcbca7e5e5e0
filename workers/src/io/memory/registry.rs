//! The named resources of one kind (queues, streams, tables...) behind one lock, so an operation
//! that spans two of them (a redrive moving a message to its dead-letter queue) stays atomic.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};

/// Resources of one kind by name (queue URL, topic ARN, stream, bucket or table name).
pub(super) struct Registry<T> {
    entries: Mutex<HashMap<String, T>>,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Registry<T> {
    /// The whole map, locked.
    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<String, T>> {
        // Every critical section validates before it mutates and never panics on bad input, so
        // a poisoned lock (a panic elsewhere while holding it) still guards consistent state.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates `name` with `make` unless it exists already (creating twice is a no-op, as it is
    /// for an SQS CreateQueue with the same attributes).
    pub(super) fn create(&self, name: &str, make: impl FnOnce() -> T) {
        self.lock().entry(name.to_owned()).or_insert_with(make);
    }

    /// Runs `f` on `name`, or returns `None` when it does not exist.
    pub(super) fn with<R>(&self, name: &str, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        self.lock().get_mut(name).map(f)
    }
}

impl<T> fmt::Debug for Registry<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: the contents can be large and are what the inspection methods are for.
        let mut names: Vec<String> = self.lock().keys().cloned().collect();
        names.sort();
        f.debug_set().entries(names).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creating_twice_keeps_the_first() {
        let registry: Registry<u32> = Registry::default();
        registry.create("a", || 1);
        registry.create("a", || 2);
        assert_eq!(registry.with("a", |v| *v), Some(1));
        assert_eq!(registry.with("b", |v| *v), None);
        assert_eq!(format!("{registry:?}"), r#"{"a"}"#);
    }
}
