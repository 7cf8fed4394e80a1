"""The command layer: Typer commands (`app`), the run-directory wrapper around a stage
(`launch`), and the commands that chain stages (`demo`, `reproduce`). Nothing below imports it."""
