"""Models: resolving `model.name_or_path` to a local folder (`resolve`), the tiny offline
Qwen2.5-VL (`tiny`). No heavy imports at module level."""
