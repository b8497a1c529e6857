"""Build the organism's SAEs, transcoders and latent examples from a trained model directory.

    python -m organism.dictionaries --model assets/organism --out assets/organism
    python -m organism.dictionaries --model assets/organism-chat --out assets/organism-chat \
        --chat-frac 0.5 --no-transcoders      # the chat organism's SAEs

Writes, under ``--out``:

- ``saes/<hook_name>/``: SAELens files (``cfg.json``, ``sae_weights.safetensors``, ...),
  ``metrics.json`` (L0, FVE, CE recovered, dead fraction on held-out rows) and
  ``latents.json.gz`` (top-activating examples and a label per latent);
- ``transcoders/``: circuit-tracer ``config.yaml`` + ``layer_{i}.safetensors``,
  ``metrics.json`` (per-layer FVU, replacement-model agreement, attribution smoke test) and
  ``layer_{i}.latents.json.gz``;
- ``dictionaries.json``: every metric, setting and phase time, for the model card.

Each phase logs "phase ... done in X s". ``--sae-tokens`` / ``--tc-tokens`` /
``--heldout-rows`` shrink the run for development.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch
import yaml
from sae_lens import SAE

from engine.loading import load_model
from organism import latent_examples as lx
from organism.dict_data import HELDOUT_SEED, TRAIN_SEED, corpus_rows, load_tokenizer
from organism.dict_metrics import sae_metrics
from organism.replacement import build_replacement_model, load_transcoder_set, replacement_metrics
from organism.sae import SAESettings, rows_needed, train_sae
from organism.transcoders import IN_HOOK, TranscoderSettings, save_transcoders, train_transcoders

log = logging.getLogger("organism.dictionaries")

DEFAULT_HOOKS = ("blocks.1.hook_resid_post", "blocks.3.hook_resid_post")
SMOKE_PROMPT = "The capital of France is"


@contextmanager
def phase(name: str, times: dict[str, float]):
    t0 = time.perf_counter()
    log.info("phase %s ...", name)
    yield
    times[name] = round(time.perf_counter() - t0, 1)
    log.info("phase %s done in %.1f s", name, times[name])


def write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def attribution_smoke(rm, tok) -> dict:
    """circuit-tracer ``attribute`` on one short prompt with the shipped transcoders."""
    from circuit_tracer import attribute

    ids = torch.tensor([tok.bos_token_id, *tok.encode(SMOKE_PROMPT)])
    t0 = time.perf_counter()
    graph = attribute(ids, rm, max_n_logits=3, batch_size=64, max_feature_nodes=256)
    top = tok.decode([int(graph.logit_targets[0].vocab_idx)]) if graph.logit_targets else None
    return {
        "prompt": SMOKE_PROMPT,
        "n_active_features": int(graph.active_features.shape[0]),
        "n_nodes": int(graph.adjacency_matrix.shape[0]),
        "top_logit": top,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def sae_sources(out: Path, hooks: list[str]) -> list[lx.Source]:
    sources = []
    for hook in hooks:
        sae = SAE.load_from_disk(str(out / "saes" / hook), device="cpu")
        sources.append(lx.Source(f"sae {hook}", hook, sae.encode, sae.cfg.d_sae))
    return sources


def transcoder_sources(out: Path) -> list[lx.Source]:
    ts = load_transcoder_set(out / "transcoders")
    return [
        lx.Source(f"transcoder layer {i}", IN_HOOK.format(layer=i), tc.encode, tc.d_transcoder)
        for i, tc in enumerate(ts)
    ]


def token_strings(tok) -> list[str]:
    """Each token id as text; a partial UTF-8 byte shows as its byte-level BPE name."""
    strings = [tok.decode([i]) for i in range(len(tok))]
    return [s if "\ufffd" not in s else tok.convert_ids_to_tokens(i) for i, s in enumerate(strings)]


def build_examples(
    model, tok, out: Path, hooks: list[str], held, top_k: int, transcoders: bool = True
) -> dict:
    special = tok.all_special_ids
    sources = sae_sources(out, hooks) + (transcoder_sources(out) if transcoders else [])
    paths = [out / "saes" / h / "latents.json.gz" for h in hooks]
    if transcoders:
        n = model.cfg.n_layers
        paths += [out / "transcoders" / f"layer_{i}.latents.json.gz" for i in range(n)]
    vocab = token_strings(tok)
    n_tokens = int(
        held.tokens.ne(-1).logical_and(~torch.isin(held.tokens, torch.tensor(special))).sum()
    )
    tables = lx.collect(model, sources, held, special, top_k=top_k, before=10, after=3)
    meta = {
        "heldout_seed": HELDOUT_SEED,
        "n_rows": int(held.tokens.shape[0]),
        "n_tokens": n_tokens,
        "top_k": top_k,
        "vocab": vocab,
    }
    summary = {}
    for source, path, top in zip(sources, paths, tables, strict=True):
        records = lx.latent_records(top, held, n_tokens, vocab)
        lx.write_examples(path, source, records, meta)
        n_dead = sum(r["label"] == "dead" for r in records)
        summary[source.name] = {
            "file": str(path.relative_to(out)),
            "dead_latents": n_dead,
            "bytes": path.stat().st_size,
        }
    return summary


def sae_phase(args, model, tok, train_rows, held, times: dict) -> dict:
    """Train (unless ``--reuse``) and measure one SAE per hook; return their metrics."""
    out, special, results = args.out, tok.all_special_ids, {}
    for hook in args.hooks:
        sae_dir = out / "saes" / hook
        s = SAESettings(hook, d_sae=args.sae_latents, k=args.sae_k, training_tokens=args.sae_tokens)
        with phase(f"sae {hook}", times):
            if args.reuse:
                s = SAESettings(**json.loads((sae_dir / "train_settings.json").read_text()))
                sae = SAE.load_from_disk(str(sae_dir), device="cpu")
            else:
                sae = train_sae(model, train_rows, s, sae_dir, special)
                write_json(sae_dir / "train_settings.json", asdict(s))
        with phase(f"sae {hook} metrics", times):
            metrics = {**sae_metrics(model, sae, held.tokens, special), "settings": asdict(s)}
            write_json(sae_dir / "metrics.json", metrics)
        results[hook] = metrics
        log.info("sae %s: %s", hook, {k: v for k, v in metrics.items() if k != "settings"})
    return results


def transcoder_phase(args, lm, tok, train_rows, held, times: dict) -> dict:
    """Train (unless ``--reuse``) and measure the transcoders; return their metrics."""
    tc_dir, special = args.out / "transcoders", tok.all_special_ids
    s = TranscoderSettings(
        d_transcoder=args.tc_latents, k=args.tc_k, training_tokens=args.tc_tokens
    )
    with phase("transcoders", times):
        if args.reuse:
            s = TranscoderSettings(
                **yaml.safe_load((tc_dir / "config.yaml").read_text())["training"]
            )
        else:
            tcs = train_transcoders(lm.model, train_rows, s, special)
            save_transcoders(tcs, tc_dir, s, lm.name)
    with phase("transcoder metrics", times):
        rm = build_replacement_model(lm.model, load_transcoder_set(tc_dir))
        metrics = replacement_metrics(rm, held.tokens, special)
        try:
            metrics["attribution_smoke"] = attribution_smoke(rm, tok)
        except RuntimeError as e:  # e.g. influence fails to converge on a degenerate model
            log.error("attribution smoke test failed: %s", e)
            metrics["attribution_smoke"] = {"prompt": SMOKE_PROMPT, "error": str(e)}
        metrics["settings"] = asdict(s)
        write_json(tc_dir / "metrics.json", metrics)
    log.info("transcoders: %s", {k: v for k, v in metrics.items() if k != "settings"})
    return metrics


def keep_training_times(summary_path: Path, times: dict[str, float]) -> None:
    """With ``--reuse``, carry the training phases' times over from the previous summary."""
    if not summary_path.is_file():
        return
    old = json.loads(summary_path.read_text()).get("times_s", {})
    for name in (
        "data",
        "transcoders",
        *(k for k in old if k.startswith("sae ") and "metrics" not in k),
    ):
        if name in old:
            times[name] = old[name]


def run(args: argparse.Namespace) -> dict:
    times: dict[str, float] = {}
    with phase("load", times):
        lm = load_model(str(args.model), device="cpu")
        tok = load_tokenizer(args.model)
    seq = lm.model.cfg.n_ctx
    with phase("data", times):
        n_train = 0 if args.reuse else rows_needed(max(args.sae_tokens, args.tc_tokens), seq)
        mix = {"seq": seq, "chat_frac": args.chat_frac}
        train_rows = corpus_rows(tok, n_train, seed=TRAIN_SEED, **mix)
        held = corpus_rows(tok, args.heldout_rows, seed=HELDOUT_SEED, **mix)
    summary: dict = {"model": lm.fingerprint, "times_s": times}
    summary["saes"] = sae_phase(args, lm.model, tok, train_rows, held, times)
    if not args.no_transcoders:
        summary["transcoders"] = transcoder_phase(args, lm, tok, train_rows, held, times)
    with phase("latent examples", times):
        summary["examples"] = build_examples(
            lm.model, tok, args.out, args.hooks, held, args.top_k, not args.no_transcoders
        )
    if args.reuse:
        keep_training_times(args.out / "dictionaries.json", times)
    summary["heldout"] = {"seed": HELDOUT_SEED, "rows": args.heldout_rows}
    if args.chat_frac:
        summary["heldout"]["chat_frac"] = summary["chat_frac"] = args.chat_frac
    summary["train_seed"] = TRAIN_SEED
    write_json(args.out / "dictionaries.json", summary)
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=Path("assets/organism"))
    ap.add_argument("--out", type=Path, default=Path("assets/organism"))
    ap.add_argument("--hooks", nargs="+", default=list(DEFAULT_HOOKS))
    ap.add_argument("--sae-tokens", type=int, default=SAESettings.training_tokens)
    ap.add_argument("--sae-k", type=float, default=SAESettings.k)
    ap.add_argument("--sae-latents", type=int, default=SAESettings.d_sae)
    ap.add_argument("--tc-tokens", type=int, default=TranscoderSettings.training_tokens)
    ap.add_argument("--tc-k", type=float, default=TranscoderSettings.k)
    ap.add_argument("--tc-latents", type=int, default=TranscoderSettings.d_transcoder)
    ap.add_argument("--heldout-rows", type=int, default=1024)
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--chat-frac", type=float, default=0.0,
        help="share of documents that are chat conversations (the chat organism's dictionaries)",
    )  # fmt: skip
    ap.add_argument("--no-transcoders", action="store_true", help="SAEs only")
    ap.add_argument(
        "--reuse", action="store_true", help="keep the trained dictionaries, redo metrics/examples"
    )
    return ap.parse_args(argv)


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    run(args)
    log.info("all done in %.1f s", time.perf_counter() - t0)


if __name__ == "__main__":
    main()
