"""Loading memory at real size: measured peak vs the engine's estimate, and vs TransformerLens.

Builds a random-weight Qwen2-0.5B-shaped directory (630M parameters as a HookedTransformer,
151936 vocab) once, then loads it in a fresh process per case, sampling that process's RSS:

- the loading peak (``engine/weights.py``) against TransformerLens's own
  ``load_and_process_state_dict`` and against ``memory.estimate``'s ``load_peak_bytes``;
- one ``run_with_cache`` of 256 and 1000 tokens: the cache's bytes against
  ``memory.activation_bytes``.

    python -m bench.bench_load_memory [--dir /tmp/qwen2-0.5b-shape]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from bench.common import ORGANISM, REPO


def build(out: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    if (out / "config.json").exists():
        return out
    config = Qwen2Config(
        hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
        num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768,
        rope_theta=1e6, tie_word_embeddings=True, bos_token_id=1, eos_token_id=1,
    )  # fmt: skip
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(str(out))
    tok = AutoTokenizer.from_pretrained(str(ORGANISM))
    tok.model_max_length = 1 << 20
    tok.save_pretrained(str(out))
    return out


def child(model_dir: str, dtype: str, how: str) -> dict:
    """One load in this process: peak RSS growth and the estimate (run as a subprocess)."""
    import torch

    from engine import weights
    from engine.loading import load_model
    from engine.memory import activation_bytes

    if how == "transformer_lens":
        weights.load_processed = lambda model, box, flags: model.load_and_process_state_dict(
            box.pop(), **flags
        )
    proc, peak = psutil.Process(), [0]

    def watch() -> None:
        while True:
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.01)

    threading.Thread(target=watch, daemon=True).start()
    base = proc.memory_info().rss
    lm = load_model(model_dir, dtype=dtype, max_context=1024)
    out = {
        "params": lm.memory.params,
        "peak": peak[0] - base,
        "estimate": lm.memory.load_peak_bytes,
    }
    for n in (256, 1000):
        with torch.inference_mode():
            _, cache = lm.model.run_with_cache(torch.randint(2, 1000, (1, n)))
        size = sum(v.numel() * v.element_size() for v in cache.values())
        out[f"cache_{n}"], out[f"est_{n}"] = size, activation_bytes(lm.model.cfg, n)
        del cache
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=str(Path(tempfile.gettempdir()) / "qwen2-0.5b-shape"))
    ap.add_argument("--child", nargs=2, metavar=("DTYPE", "HOW"))
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.dir, *args.child)))
        return
    model_dir = build(Path(args.dir))
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    rows = ["| dtype | loader | peak GiB | bytes/param | peak / estimate | cache 256 / est | cache 1000 / est |",
            "|---|---|---|---|---|---|---|"]  # fmt: skip
    for dtype in ("bfloat16", "float32"):
        for how in ("transformer_lens", "engine"):
            cmd = [sys.executable, "-m", "bench.bench_load_memory", "--dir", str(model_dir),
                   "--child", dtype, how]  # fmt: skip
            r = json.loads(subprocess.check_output(cmd, cwd=REPO, env=env).splitlines()[-1])
            rows.append(
                f"| {dtype} | {how} | {r['peak'] / 2**30:.2f} | {r['peak'] / r['params']:.1f} | "
                f"{r['peak'] / r['estimate']:.2f} | {r['cache_256'] / r['est_256']:.2f} | "
                f"{r['cache_1000'] / r['est_1000']:.2f} |"
            )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
