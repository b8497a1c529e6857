"""Run the engine alone: ``python -m engine --model NAME_OR_DIR --host 127.0.0.1 --port 8765``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import uvicorn

from engine import paths
from engine.api import create_app
from engine.service import Engine
from engine.settings import EngineSettings, default_model


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    ap.add_argument("--model", help="TransformerLens model name or local Hugging Face directory")
    ap.add_argument("--host", help="address to bind (default 127.0.0.1)")
    ap.add_argument("--port", type=int)
    ap.add_argument("--token", help="required of clients; mandatory beyond loopback")
    ap.add_argument("--device", help="cuda / mps / cpu (default: best available)")
    ap.add_argument("--dtype", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--cache-dir")
    ap.add_argument(
        "--data-dir", action="append", default=[], metavar="DIR",
        help="a directory whose files requests may read (text files, datasets, SAE and model "
        "directories), besides the data_dirs setting; repeat for more",
    )  # fmt: skip
    ap.add_argument(
        "--allowed-host", action="append", default=[], metavar="NAME",
        help="a host name clients reach the engine by, besides the bound address; repeat for "
        "more ('*': any, e.g. behind a proxy that checks it)",
    )  # fmt: skip
    ap.add_argument(
        "--max-context", type=int, help="longest prompt (default 2048 on CPU, 4096 on CUDA)"
    )
    ap.add_argument("--n-devices", type=int, help="split the model's layers across N CUDA GPUs")
    args = ap.parse_args(argv)
    overrides = {
        k: v
        for k, v in {
            "model": args.model,
            "host": args.host,
            "port": args.port,
            "token": args.token,
            "device": args.device,
            "dtype": args.dtype,
            "cache_dir": args.cache_dir,
            "max_context": args.max_context,
            "n_devices": args.n_devices,
        }.items()
        if v is not None
    }
    settings = EngineSettings(**overrides)
    settings.data_dirs = [*settings.data_dirs, *map(Path, args.data_dir)]
    settings.allowed_hosts = [*settings.allowed_hosts, *args.allowed_host]
    if settings.model is None:
        settings.model = default_model()
    settings.check_exposure()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s engine %(levelname)s %(message)s")
    paths.ensure_default_data_dir(settings)
    engine = Engine(settings)
    uvicorn.run(create_app(engine), host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
