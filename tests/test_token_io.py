"""Token-in, token-out: the local engine trains exactly the ids its rollouts sampled.

Two checks on the real engine with the tiny model:
- a scripted generator writes a tool call cut by the length limit (no end token) and then an
  answer as ids that decode and re-encode differently (one token per character); the update
  trains those very ids, nothing else, and the engine-inserted `<|im_end|>` is not trained;
- a real multi-turn rollout (crop observation in the middle, batch with left padding): the
  policy's old log-probs on the trace equal the log-probs sampling saw (temperature 1).
"""

import json

import pytest
import torch
from PIL import Image, ImageDraw

from pixelctl.agent import Generation
from pixelctl.config import load_recipe
from pixelctl.engines.local import loop
from pixelctl.engines.local.policy import sampled_logprobs
from pixelctl.queries import load_queries
from pixelctl.rundir import RunDir

pytestmark = pytest.mark.slow

CALL = (
    'I will zoom in.<tool_call>\n{"name": "crop_image_normalized", "arguments": '
    '{"bbox_2d": [0.1, 0.1, 0.6, 0.6], "target_image": 1}}\n</tool_call>'
)
ANSWER = "The square is red, so the answer is \\boxed{red}"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok-data")
    rows = []
    for i, colour in enumerate(["red", "blue"]):
        img = Image.new("RGB", (560 - 112 * i, 420), (240, 240, 240))  # prompts differ in length
        ImageDraw.Draw(img).rectangle([40 + 60 * i, 30, 100 + 60 * i, 90], fill=colour)
        img.save(root / f"s{i}.png")
        rows.append(
            {
                "qid": f"q{i}",
                "question": "What colour is the square?",
                "image": [f"s{i}.png"],
                "answer": colour,
                "is_video": False,
            }
        )
    (root / "rl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return load_queries([root / "rl.jsonl"])


def engine(tiny_model_dir, tmp_path, data, **rollout):
    raw = {
        "model": {"name_or_path": str(tiny_model_dir), "dtype": "float32"},
        "executor": {"box_mode": "strict"},
        "rl": {
            "engine": "local",
            "data": ["unused"],
            "seed": 0,
            "rollout": {"n_samples": 2, "prompts_per_round": 2, **rollout},
            "optim": {"batch_size": 4, "micro_batch_size": 4, "lr": 1e-3, "warmup_ratio": 0.0},
            "replay": {"capacity": 16},
        },
        "launch": {"device": "cpu", "runs_root": str(tmp_path)},
    }
    recipe = load_recipe(None, raw=raw).recipe
    run = RunDir.create(tmp_path, "rl", "t", recipe.model_dump(mode="json"))
    return loop.LocalEngine(recipe, run, data, str(tiny_model_dir))


class Scripted:
    """Feeds what the real backend would feed (its own `fragment`), samples scripted ids: turn 1
    the tool call cut before `<|im_end|>`, turn 2 the answer one token per character."""

    token_io = True

    def __init__(self, hf):
        self.hf, self.tok = hf, hf.processor.tokenizer
        self.sampled = []

    def per_char(self, text):
        ids = [self.tok.convert_tokens_to_ids(t) for t in self.tok.tokenize(text)]
        out = []
        for i in ids:  # split every multi-character token into single-character ones
            piece = self.tok.convert_ids_to_tokens(i)
            out += [self.tok.convert_tokens_to_ids(c) for c in piece] if len(piece) > 1 else [i]
        return out

    def __call__(self, convs, samplings, traces):
        gens = []
        for conv, trace in zip(convs, traces, strict=True):
            fed, vis = self.hf.fragment(conv, trace)
            if trace is None:
                ids = self.tok.encode(CALL)  # cut by the length limit: no end token
            else:
                ids = [*self.per_char(ANSWER), self.tok.eos_token_id]
            self.sampled.append(ids)
            text = self.tok.decode(ids, skip_special_tokens=True)
            gens.append(Generation(text, 0, len(ids), tuple(fed), vis, tuple(ids)))
        return gens


def test_scripted_ids_are_trained_as_sampled(tiny_model_dir, tmp_path, data):
    eng = engine(tiny_model_dir, tmp_path, data)
    tok = eng.policy.processor.tokenizer
    scripted = Scripted(eng.policy.generator)
    answer_ids = scripted.per_char(ANSWER)
    assert tok.encode(tok.decode(answer_ids)) != answer_ids  # re-encoding merges them
    eng.generate = scripted
    outcomes, _ = eng.rollouts(0)
    assert [len(o.calls) for o in outcomes] == [1] * 4 and all(
        c.ok for o in outcomes for c in o.calls
    )
    for o in outcomes:
        batch, mask = eng.policy.encode([o.trace])
        trained = batch["input_ids"][0][mask[0]].tolist()
        assert trained == tok.encode(CALL) + answer_ids + [tok.eos_token_id]
        # the closer the engine inserted after the cut turn is fed, never trained
        after_call = o.trace.sampled.index(True) + len(tok.encode(CALL))
        assert o.trace.ids[after_call] == tok.eos_token_id and not o.trace.sampled[after_call]
        assert o.trace.ids.count(tok.convert_tokens_to_ids("<|image_pad|>")) > 0
    # and the update trains them: every trajectory's tokens move
    for i, o in enumerate(outcomes):
        eng.store.put(f"t{i}", o, [1.0, -1.0, 0.5, -0.5][i])
    before = [p.detach().clone() for p in eng.policy.trainable()]
    logs = eng.update([(f"t{i}", eng.store.advantage(f"t{i}")) for i in range(4)])
    assert logs[0]["grad_norm"] > 0
    assert any(not torch.equal(b, p) for b, p in zip(before, eng.policy.trainable(), strict=True))


class CallThenModel:
    """Turn 1: a scripted tool call (so the rollout gets a crop); turn 2: the real model samples."""

    token_io = True

    def __init__(self, hf):
        self.hf = hf

    def __call__(self, convs, samplings, traces):
        if traces[0] is None:
            tok = self.hf.processor.tokenizer
            ids = [*tok.encode(CALL), tok.eos_token_id]
            frags = [self.hf.fragment(c, None) for c in convs]
            return [Generation(CALL, 0, len(ids), tuple(f), v, tuple(ids)) for f, v in frags]
        return self.hf(convs, samplings, traces=traces)


def test_old_logprobs_equal_sampling_logprobs(tiny_model_dir, tmp_path, data):
    eng = engine(tiny_model_dir, tmp_path, data, temperature=1.0, top_p=1.0, max_new_tokens=24)
    eng.generate = CallThenModel(eng.policy.generator)
    outcomes, _ = eng.rollouts(0)
    traces = [o.trace for o in outcomes]
    lengths = {len(t.ids) for t in traces}
    assert len(lengths) > 1  # different lengths: left padding differs between generation and here
    first_turn = [t.sampled.index(True) for t in traces]
    with torch.no_grad():
        batch, mask = eng.policy.encode(traces)
        old, amask, _ = eng.policy.logprobs(batch, mask)
    at_sampling = sampled_logprobs(traces, batch["input_ids"].shape[1])
    # only the model's own turn has sampling-time log-probs (turn 1 was scripted)
    model_turn = torch.zeros_like(amask)
    width = batch["input_ids"].shape[1]
    for row, t in enumerate(traces):
        pad = width - len(t.ids)
        start = max(i for i, s in enumerate(t.sampled) if s and not t.sampled[i - 1])
        assert start > first_turn[row]
        model_turn[row, pad + start - 1 :] = amask[row, pad + start - 1 :]
    assert model_turn.sum() > 20
    diff = (old - at_sampling).abs()[model_turn]
    assert float(diff.max()) < 1e-4, float(diff.max())
