//! A compaction task: a label for the logs and the targets (a store and its ranges) to compact.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::kv::Compactable;
use crate::range::KeyRange;

/// A store to compact and the ranges to compact in it.
#[derive(Clone)]
pub struct CompactionTarget {
    pub(crate) name: Cow<'static, str>,
    pub(crate) store: Arc<dyn Compactable>,
    pub(crate) ranges: Option<Vec<KeyRange>>,
    pub(crate) deleted: Vec<KeyRange>,
}

impl fmt::Debug for CompactionTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompactionTarget")
            .field("name", &self.name)
            .field("engine", &self.store.capabilities().engine)
            .field("ranges", &self.ranges)
            .finish()
    }
}

/// One unit of work for the compactor: a label for the logs, a default range, and one or more
/// targets (the spec's `compactBoth` is a task with the state store and the block store).
#[derive(Clone, Debug)]
pub struct CompactionTask {
    pub(crate) label: Cow<'static, str>,
    pub(crate) range: KeyRange,
    pub(crate) targets: Vec<CompactionTarget>,
}

impl CompactionTask {
    /// A task over the full key range with no target yet.
    pub fn new(label: impl Into<Cow<'static, str>>) -> Self {
        Self {
            label: label.into(),
            range: KeyRange::full(),
            targets: Vec::new(),
        }
    }

    /// Sets the range compacted on targets added without ranges of their own.
    pub fn with_range(mut self, range: KeyRange) -> Self {
        self.range = range;
        self
    }

    /// Adds a target compacted over the task's range.
    pub fn with_target(
        mut self,
        name: impl Into<Cow<'static, str>>,
        store: Arc<dyn Compactable>,
    ) -> Self {
        self.targets.push(CompactionTarget {
            name: name.into(),
            store,
            ranges: None,
            deleted: Vec::new(),
        });
        self
    }

    /// Adds a target compacted over its own `ranges` (e.g. the key families of pruned heights).
    pub fn with_target_ranges(
        mut self,
        name: impl Into<Cow<'static, str>>,
        store: Arc<dyn Compactable>,
        ranges: Vec<KeyRange>,
    ) -> Self {
        self.targets.push(CompactionTarget {
            name: name.into(),
            store,
            ranges: Some(ranges),
            deleted: Vec::new(),
        });
        self
    }

    /// Declares `ranges` of the target added last as wholly deleted for good (pruned heights),
    /// so that the engine may drop their space cheaply before compacting
    /// ([`Compactable::drop_deleted_range`]). Empty ranges are left out; without a target it
    /// does nothing.
    pub fn with_deleted_ranges(mut self, ranges: Vec<KeyRange>) -> Self {
        if let Some(target) = self.targets.last_mut() {
            target
                .deleted
                .extend(ranges.into_iter().filter(|r| !r.is_empty()));
        }
        self
    }

    /// The label used in every log line of this task.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The task's default range.
    pub fn range(&self) -> &KeyRange {
        &self.range
    }

    /// Names of the targets, in run order.
    pub fn target_names(&self) -> Vec<&str> {
        self.targets.iter().map(|t| t.name.as_ref()).collect()
    }
}
