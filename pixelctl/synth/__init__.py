"""Synthesis of warm-start trajectories (docs/method.md §7): seeds → re-executed operations → SFT records.

Modules: `seeds` (readers, validation), `procedural` (synthetic scenes), `plan` (the mix),
`operations` (correct and missed operations), `trajectories` (re-execute + compose), `writers`
(template, LLM), `cache`, `output` (append-only files, resume), `stats`, `pipeline` (the run).
"""
