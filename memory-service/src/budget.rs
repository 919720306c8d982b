//! The byte budget of one response: which items, taken in order, fit.

/// Bytes left for a response's items. The first item always fits, so that a
/// page makes progress even past a budget smaller than a single item.
#[derive(Clone, Copy, Debug)]
pub struct ByteBudget {
    limit: usize,
    used: usize,
    items: usize,
}

impl ByteBudget {
    /// A budget of `limit` bytes, nothing taken yet.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            used: 0,
            items: 0,
        }
    }

    /// Takes the next item, of `size` bytes, if it fits beside those taken.
    pub fn take(&mut self, size: usize) -> bool {
        let used = self.used.saturating_add(size);
        if self.items > 0 && used > self.limit {
            return false;
        }
        self.used = used;
        self.items += 1;
        true
    }
}

/// How many of the leading items, of these sizes, fit in `limit` bytes.
pub fn fitting(sizes: impl IntoIterator<Item = usize>, limit: usize) -> usize {
    let mut budget = ByteBudget::new(limit);
    sizes
        .into_iter()
        .take_while(|size| budget.take(*size))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_taken_while_they_fit() {
        assert_eq!(fitting([40, 40, 40], 100), 2);
        assert_eq!(fitting([40, 60, 1], 100), 2);
        assert_eq!(fitting([10, 10], 100), 2);
        assert_eq!(fitting([], 100), 0);
    }

    #[test]
    fn once_an_item_does_not_fit_the_budget_is_not_charged() {
        let mut budget = ByteBudget::new(100);
        assert!(budget.take(60));
        assert!(!budget.take(50));
        assert!(budget.take(40));
        assert!(!budget.take(1));
    }

    #[test]
    fn the_first_item_always_fits() {
        assert_eq!(fitting([500, 1], 100), 1);
        assert_eq!(fitting([usize::MAX, usize::MAX], 1), 1);
    }
}
