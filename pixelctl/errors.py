"""Errors every layer may raise and the command layer turns into a message, not a traceback.

The ground floor: it imports nothing of pixelctl, so engines and stages raise `StageError`
without importing the stage contract above them. (Recipe problems are `RecipeError`, in
`config`, with file, key and fix.)
"""

from __future__ import annotations


class StageError(RuntimeError):
    """Bad input a stage found (data, paths, hardware): shown as a message, not a traceback."""
