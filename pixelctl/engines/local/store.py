"""Trajectories kept across rounds for Selective Sample Replay, saved with each checkpoint.

The replay buffer holds trajectory ids (JSON-safe, so its state goes into the checkpoint as is);
this store maps ids to what the update trains: each rollout's `TokenTrace` (the exact ids the
model saw and sampled, the sampling-time log-probs and the processed images). On save, the
traces still referenced by the buffer are written to `traces.pt` (ids, masks and image tensors
as they are); on resume they are read back bit-identical, so a replayed trajectory trains the
same tokens after a restart.

`dump_messages` writes a conversation with its images as PNG files, for the sample logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pixelctl.agent import TokenTrace


def dump_messages(messages: list[dict[str, Any]], folder: Path, tid: str) -> list[dict]:
    out, n = [], 0
    for message in messages:
        content = []
        for item in message["content"]:
            if item["type"] == "image":
                name = f"{tid}-{n}.png"
                item["image"].save(folder / name)
                content.append({"type": "image", "image": name})
                n += 1
            elif item["type"] == "video":
                names = []
                for frame in item["video"]:
                    names.append(f"{tid}-{n}.png")
                    frame.save(folder / names[-1])
                    n += 1
                content.append({"type": "video", "video": names})
            else:
                content.append(item)
        out.append({"role": message["role"], "content": content})
    return out


class TrajectoryStore:
    """Trajectory id → (token trace, advantage at the round it was sampled)."""

    FILE = "traces.pt"

    def __init__(self) -> None:
        self.items: dict[str, tuple[Any, float]] = {}

    def put(self, tid: str, rollout: Any, advantage: float) -> None:
        """Keep a rollout's trace (an `Outcome`'s `.trace`, or a `TokenTrace` itself)."""
        self.items[tid] = (getattr(rollout, "trace", rollout), float(advantage))

    def get(self, tid: str) -> TokenTrace:
        return self.items[tid][0]

    def advantage(self, tid: str) -> float:
        return self.items[tid][1]

    def keep_only(self, ids: set[str]) -> None:
        self.items = {k: v for k, v in self.items.items() if k in ids}

    def save(self, folder: Path) -> None:
        import torch

        folder.mkdir(parents=True, exist_ok=True)
        data = {
            tid: ({**t.__dict__} if isinstance(t, TokenTrace) else t, a)
            for tid, (t, a) in self.items.items()
        }
        torch.save(data, folder / self.FILE)

    @classmethod
    def load(cls, folder: Path) -> TrajectoryStore:
        import torch

        store = cls()
        data = torch.load(folder / cls.FILE, weights_only=False)
        store.items = {
            tid: (TokenTrace(**t) if isinstance(t, dict) else t, a) for tid, (t, a) in data.items()
        }
        return store
