"""The analysis stage (pure numpy): measures (:mod:`.measures`), FD-vs-AD agreement
(:mod:`.agreement`), per-point summaries and stability (:mod:`.summaries`), the
comparison with a baseline run (:mod:`.baseline`) and the statistics they share
(:mod:`.stats`). Nothing here knows about TensorFlow, files or HTML."""
