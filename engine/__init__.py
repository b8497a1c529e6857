"""The engine package. ``from engine import serve`` serves a model already in memory
(engine/serving.py); it is imported lazily so that the app's client stays free of torch."""


def __getattr__(name: str):
    if name == "serve":
        from engine.serving import serve

        return serve
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
