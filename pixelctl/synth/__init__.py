"""Synthesis of warm-start trajectories (docs/method.md §7): seeds → replayed operations → SFT records.

Modules: `seeds` (readers, validation), `procedural` (synthetic scenes), `plan` (the mix),
`operations` (correct and missed operations), `trajectories` (replay + compose), `writers`
(template, LLM), `cache`, `output` (append-only files, resume), `stats`, `pipeline` (the run).
"""
