"""Resume points for long training runs that must survive the loss of ``runs/``.

A resume point is ``<name>.safetensors`` (model weights only) and ``<name>.json`` (step,
phase, data seed, metrics so far) in a folder; ``organism/carry/`` is the tracked one. The
optimizer state is not kept (it is twice the weights), so a run resumed from a carry point
re-warms its learning rate for a few steps (see the training scripts).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

CARRY_DIR = Path(__file__).resolve().parent / "carry"


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_point(model: torch.nn.Module, folder: Path, name: str, meta: dict) -> None:
    """Write ``folder/name.safetensors`` and ``folder/name.json`` atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    _atomic_write(folder / f"{name}.safetensors", lambda p: save_file(state, p))
    text = json.dumps(meta, indent=2)
    _atomic_write(folder / f"{name}.json", lambda p: Path(p).write_text(text))


def load_point(model: torch.nn.Module, folder: Path, name: str) -> dict | None:
    """Load ``name`` from `folder` into `model` and return its metadata, or None if absent."""
    weights, meta = folder / f"{name}.safetensors", folder / f"{name}.json"
    if not (weights.exists() and meta.exists()):
        return None
    model.load_state_dict(load_file(str(weights)))
    return json.loads(meta.read_text())


def copy_point(work: Path, name: str, folder: Path = CARRY_DIR) -> dict:
    """Copy the save point ``work/name.*`` (written by a training script) into `folder`."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for ext in ("safetensors", "json"):
        src = work / f"{name}.{ext}"
        _atomic_write(folder / src.name, lambda p, src=src: shutil.copyfile(src, p))
    return json.loads((folder / f"{name}.json").read_text())


def main() -> None:
    """``python -m organism.carry runs/phase_d phase_d``: carry a run's latest save point."""
    import sys

    work, name = Path(sys.argv[1]), sys.argv[2]
    meta = copy_point(work, name)
    print(f"carried {name} at step {meta['step']} into {CARRY_DIR}")


if __name__ == "__main__":
    main()
