//! The stores' table: one pointer per record, hashed and compared by the record's key, looked up
//! by a key alone. A map from key to record would hold a copy of every key beside the record that
//! already carries it (32 bytes per cached mirror).

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::Record;

/// A stored record, hashed and compared by its key: the table holds one pointer per record
/// instead of a copy of the key beside it (looked up by key through `Borrow`).
pub(super) struct Slot<R: Record>(pub(super) Arc<R>);

impl<R: Record> Hash for Slot<R> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.key().hash(state)
    }
}

impl<R: Record> PartialEq for Slot<R> {
    fn eq(&self, other: &Self) -> bool {
        self.0.key() == other.0.key()
    }
}

impl<R: Record> Eq for Slot<R> {}

/// What a [`Slot`] is looked up by: its record's key. A trait object because `Borrow<R::Key>`
/// itself would overlap the blanket `Borrow<T> for T`.
pub(super) trait AsKey<K> {
    fn as_key(&self) -> &K;
}

impl<K> AsKey<K> for K {
    fn as_key(&self) -> &K {
        self
    }
}

impl<K: Hash> Hash for dyn AsKey<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_key().hash(state)
    }
}

impl<K: Eq> PartialEq for dyn AsKey<K> {
    fn eq(&self, other: &Self) -> bool {
        self.as_key() == other.as_key()
    }
}

impl<K: Eq> Eq for dyn AsKey<K> {}

impl<R: Record> std::borrow::Borrow<dyn AsKey<R::Key>> for Slot<R> {
    fn borrow(&self) -> &(dyn AsKey<R::Key> + 'static) {
        self.0.key()
    }
}

/// `key` as a [`Table`] looks it up.
pub(super) fn lookup<K: 'static>(key: &K) -> &(dyn AsKey<K> + 'static) {
    key
}

pub(super) type Table<R> = HashSet<Slot<R>>;
