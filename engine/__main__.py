"""Run the engine alone: ``python -m engine --model NAME_OR_DIR --host 127.0.0.1 --port 8765``."""

from __future__ import annotations

import argparse
import logging

import uvicorn

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
    if settings.model is None:
        settings.model = default_model()
    settings.check_exposure()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s engine %(levelname)s %(message)s")
    engine = Engine(settings)
    uvicorn.run(create_app(engine), host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
