"""The job entrypoint of tests/test_openrlhf_ray.py: OpenRLHF's own `train_ppo_ray` up to its
`ray.init`, then a probe of what a real run's workers would see.

`openrlhf/cli/train_ppo_ray.py` is executed from the installed source: its `__main__` block
verbatim (the real parser, `hierarchize`, every argument check), then the real `train(args)`,
whose first statement is the `ray.init(runtime_env={"env_vars": …})` that Ray merges with the
job's runtime env. The module's OpenRLHF imports (vLLM engines, DeepSpeed actors) cannot load
without GPUs, so they are left out and `get_strategy` — train's next statement, the first that
needs DeepSpeed — stops the run. Nothing of OpenRLHF is rewritten.

The probe then starts Ray actors the way OpenRLHF starts its engines (the job's runtime env,
any node) and prints one `PROBE {json}` line for the test.
"""

from __future__ import annotations

import ast
import asyncio
import json
import sys
from importlib.util import find_spec
from pathlib import Path


class StopAfterInit(Exception):
    def __init__(self, parsed):
        super().__init__("stopped after ray.init")
        self.parsed = parsed


def run_train_ppo_ray(argv: list[str]):
    source = (Path(find_spec("openrlhf").origin).parent / "cli" / "train_ppo_ray.py").read_text()
    tree = ast.parse(source)
    keep = [
        n
        for n in tree.body
        if not (isinstance(n, ast.ImportFrom) and (n.module or "").startswith("openrlhf"))
    ]
    ns = {"__name__": "__main__", "get_strategy": _stop}
    sys.argv = ["train_ppo_ray", *argv]
    try:
        exec(compile(ast.Module(body=keep, type_ignores=[]), "train_ppo_ray.py", "exec"), ns)
    except StopAfterInit as stop:
        return stop.parsed
    raise RuntimeError("train() returned without reaching get_strategy")


def _stop(args):
    raise StopAfterInit(args)


# ---------------------------------------------------------------------------- the probe actor
CROP = (
    "Let me zoom in.<tool_call>\n"
    '{"name": "crop_image_normalized", "arguments": {"bbox_2d": [0.25, 0.25, 0.75, 0.75], '
    '"target_image": 1}}\n</tool_call>'
)


class SamplingParams:
    """vLLM's SamplingParams fields OpenRLHF's executor reads and writes (vLLM is not
    installed on CPU); one instance is shared by the n samples, as OpenRLHF passes it."""

    def __init__(self, max_tokens):
        self.temperature, self.top_p, self.max_tokens, self.logprobs = 1.0, 0.95, max_tokens, None


class ScriptedEngine:
    """Stands in for vLLM's token generation only (no GPU here): each turn answers with fixed
    text as token ids, `<|im_end|>` last, as vLLM returns them. Safe because everything around
    it — prompt tokens, images, pads, masks, rewards — is computed by OpenRLHF and pixelctl."""

    def __init__(self, tokenizer, turns):
        self.tokenizer, self.turns, self.calls = tokenizer, list(turns), []

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        from types import SimpleNamespace

        images = list((multi_modal_data or {}).get("image", []))
        self.calls.append({"prompt": len(prompt_token_ids), "images": len(images)})
        text = self.turns.pop(0)
        inner = self.tokenizer.tokenizer
        ids = inner(text, add_special_tokens=False)["input_ids"]
        ids.append(inner.convert_tokens_to_ids("<|im_end|>"))
        out = SimpleNamespace(token_ids=ids, text=text, finish_reason="stop", logprobs=None)
        return SimpleNamespace(outputs=[out])


def probe(plugin_path: str, model: str, image: str, max_len: int, max_new_tokens: int) -> dict:
    """Inside a Ray worker of the job: the plugin as OpenRLHF's `_load_agent_executor` loads it
    (vllm_engine.py: spec_from_file_location("agent_module", path), then `AgentExecutor()`),
    settings from the worker's env, one rollout through the real MultiTurnAgentExecutor."""
    import importlib.util
    import os

    from openrlhf.utils.utils import get_tokenizer

    from pixelctl.agent import Query
    from pixelctl.engines.openrlhf import patchcheck
    from pixelctl.engines.openrlhf.data import label_json, render_prompt

    spec = importlib.util.spec_from_file_location("agent_module", plugin_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    executor = module.AgentExecutor()
    processor = get_tokenizer(model, None, "left")
    query = Query(qid="ray-1", question="How many?", images=(image,), answer="7")
    engine = ScriptedEngine(processor, [CROP, r"It is \boxed{7}"])
    shared = SamplingParams(max_new_tokens)
    result = asyncio.run(
        executor.execute(
            render_prompt(query),
            label_json(query),
            shared,
            max_length=max_len,
            hf_tokenizer=processor,
            llm_engine=engine,
            images=[image],
        )
    )
    return {
        "env_keys": sorted(k for k in os.environ if k.startswith("PIXELCTL_")),
        "crop_max_pixels": executor.config.settings.bounds.crop_max_pixels,
        "calls": engine.calls,
        "reward": result["reward"],
        "extra_logs": result["extra_logs"],
        "grid_rows": int(result["mm_train_inputs"]["image_grid_thw"].shape[0]),
        "shared_max_tokens_after": shared.max_tokens,
        "openrlhf": str(patchcheck.openrlhf_dir()),
        "missing": patchcheck.missing(),
    }


class Started:
    def ping(self) -> str:
        return "started"


def main() -> None:
    import time

    t0 = time.monotonic()
    spec = json.loads(sys.argv[1])
    args = run_train_ppo_ray(sys.argv[2:])
    import ray

    from pixelctl.engines.openrlhf.patchcheck import PatchesMissing  # noqa: F401

    report = {
        "parsed": {
            "agent_func_path": args.train.agent_func_path,
            "remote_url": args.reward.remote_url,
            "save_steps": args.ckpt.save_steps,
            "max_len": args.data.max_len,
        },
        "job_env": sorted(ray.get_runtime_context().runtime_env.get("env_vars", {})),
    }
    remote = ray.remote(num_cpus=0)(probe)
    report["t_init"] = round(time.monotonic() - t0, 1)
    report["probe"] = ray.get(
        remote.remote(
            args.train.agent_func_path,
            spec["model"],
            spec["image"],
            args.data.max_len,
            args.rollout.max_new_tokens,
        )
    )
    report["t_probe"] = round(time.monotonic() - t0, 1)
    # the same worker without the patched OpenRLHF: the setup hook must stop it, naming the node
    # (the job's own upload of pixelctl, by its URI: a task may not name local paths)
    pixelctl_uri = ray.get_runtime_context().runtime_env["py_modules"][0]
    unpatched = (
        ray.remote(num_cpus=0)(Started).options(runtime_env={"py_modules": [pixelctl_uri]}).remote()
    )
    try:  # an actor, as OpenRLHF's engines and trainer are: its death carries Ray's exit detail
        report["unpatched"] = ray.get(unpatched.ping.remote(), timeout=60)
    except Exception as exc:  # ray.exceptions.RayTaskError / WorkerCrashedError
        report["unpatched"] = f"{type(exc).__name__}: {exc}"[:3000]
    report["seconds"] = round(time.monotonic() - t0, 1)
    print("PROBE " + json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
