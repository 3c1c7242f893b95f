//! [`Few`]: a list that almost always holds one item.
//!
//! A rule matches one route or domain and allows one consumer far more often
//! than several. A `Box<[T]>` costs an allocation even for one item (and a
//! guest's allocator rounds each up to 16 bytes); `Few` keeps a single item
//! inline and boxes only longer lists, and reads as a slice either way.
//!
//! Not `SmallVec<[T; 1]>` (a dependency already): that is a word or more
//! larger, and its spilled lists keep spare capacity. `Few<Box<str>>` is 24
//! bytes (12 in the guest) where that SmallVec is 32 (16); `Few<u32>` is 16
//! (8) against 24 (12). A 200,000-rule policy has three of them per rule.

use std::hash::{Hash, Hasher};
use std::ops::{Deref, DerefMut};

/// One item inline, or any other number boxed. Compared and hashed as the
/// slice it reads as, whichever way it is kept.
#[derive(Debug, Clone)]
pub enum Few<T> {
    One(T),
    Many(Box<[T]>),
}

impl<T> Deref for Few<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Few::One(item) => std::slice::from_ref(item),
            Few::Many(items) => items,
        }
    }
}

impl<T> DerefMut for Few<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Few::One(item) => std::slice::from_mut(item),
            Few::Many(items) => items,
        }
    }
}

impl<T> Default for Few<T> {
    fn default() -> Self {
        Few::Many(Box::default())
    }
}

impl<T> From<Vec<T>> for Few<T> {
    fn from(mut items: Vec<T>) -> Self {
        match items.pop() {
            Some(only) if items.is_empty() => Few::One(only),
            Some(last) => {
                items.push(last);
                Few::Many(items.into_boxed_slice())
            }
            None => Few::default(),
        }
    }
}

/// One item is not put in a `Vec` first (most lists have one).
impl<T> FromIterator<T> for Few<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        let mut items = items.into_iter();
        let Some(first) = items.next() else {
            return Few::default();
        };
        match items.next() {
            None => Few::One(first),
            Some(second) => {
                let mut all = Vec::with_capacity(2 + items.size_hint().0);
                all.extend([first, second]);
                all.extend(items);
                Few::Many(all.into_boxed_slice())
            }
        }
    }
}

impl<T: Clone> From<&[T]> for Few<T> {
    fn from(items: &[T]) -> Self {
        match items {
            [only] => Few::One(only.clone()),
            _ => Few::Many(items.into()),
        }
    }
}

impl<T: PartialEq> PartialEq for Few<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Eq> Eq for Few<T> {}

impl<T: Hash> Hash for Few<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

/// The items, by value.
pub enum IntoIter<T> {
    One(Option<T>),
    Many(std::vec::IntoIter<T>),
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self {
            IntoIter::One(item) => item.take(),
            IntoIter::Many(items) => items.next(),
        }
    }
}

impl<T> IntoIterator for Few<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        match self {
            Few::One(item) => IntoIter::One(Some(item)),
            Few::Many(items) => IntoIter::Many(items.into_vec().into_iter()),
        }
    }
}

impl<'a, T> IntoIterator for &'a Few<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn one_item_is_inline_and_every_shape_reads_as_its_slice() {
        assert!(matches!(Few::from(vec![7]), Few::One(7)));
        for items in [vec![], vec![1], vec![1, 2], vec![3, 1, 2]] {
            let few = Few::from(items.clone());
            assert_eq!(&*few, &items[..]);
            assert_eq!(few.clone().into_iter().collect::<Vec<_>>(), items);
            assert_eq!(Few::from(&items[..]), few);
            let collected: Few<_> = items.iter().copied().collect();
            assert_eq!(collected, few);
            assert_eq!(matches!(collected, Few::One(_)), items.len() == 1);
        }
        // Equal and hashed alike however they are kept.
        let boxed_one = Few::Many(Box::new([5]));
        assert_eq!(boxed_one, Few::One(5));
        let set: HashSet<Few<u32>> = [boxed_one, Few::One(5)].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert!(std::mem::size_of::<Few<u32>>() <= std::mem::size_of::<Box<[u32]>>());
    }
}
