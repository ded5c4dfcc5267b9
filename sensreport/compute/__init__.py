"""The compute stage: the plan (:mod:`.plan`, the only place the memory budget is split),
the method registry (:mod:`.methods`), the local sweep over chunks (:mod:`.sweep`) and
the same sweep on a Ray cluster (:mod:`.ray`)."""
