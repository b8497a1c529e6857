"""What is built on one loaded model and lives and dies with it: its ``ModelSession``.

``Engine.use`` (which ``Engine.load`` calls) opens a session for the model it installs: the
SAE registry with the SAEs shipped in the model's directory attached, and empty slots for
what is built on demand (the local transcoders, circuit-tracer's replacement model) and for
steering's kept results (contrastive vectors, baseline continuations). A new kind of per-model
state (directions, probes) is one more field here. Loading another model drops the session
with the old weights, so nothing built on them stays in memory.

Everything that builds or fills the session runs on the model thread (engine/model_thread.py),
one piece of work at a time, so it needs no lock. The SAE registry is also read from HTTP
threads (``GET /saes``, a latent's Neuronpedia route, a job's submit check, the
capabilities): those reads go over a snapshot of its dict (``SaeRegistry.get``, ``infos``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from engine.loading import LoadedModel
    from engine.saes import SaeRegistry

K = TypeVar("K")
V = TypeVar("V")


class Lru(OrderedDict, Generic[K, V]):
    """At most `size` entries, the least recently used dropped first."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get(self, key: K, default: V | None = None) -> V | None:
        if key in self:
            self.move_to_end(key)
            return self[key]
        return default

    def put(self, key: K, value: V) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


@dataclass(eq=False)
class ModelSession:
    """The per-model state of one loaded model (see the module's docstring)."""

    saes: SaeRegistry
    transcoders: Any = None  # circuit-tracer's TranscoderSet of a local model dir, once loaded
    replacement: Any = None  # circuit-tracer's ReplacementModel, once built
    # steering: mean-difference vectors by (hook, positive, negative), baseline continuations
    # by (prompt, sampling settings): moving a slider recomputes only the steered one
    contrastive: Lru = field(default_factory=lambda: Lru(32))
    baselines: Lru = field(default_factory=lambda: Lru(4))
    directions: Any = None  # the DirectionStore (engine/directions.py), opened on first use

    @classmethod
    def open(cls, lm: LoadedModel) -> ModelSession:
        """The session of `lm`, with the SAEs shipped in its directory attached (call it on
        the model thread)."""
        from engine.saes import SaeRegistry

        reg = SaeRegistry(lm)
        if lm.local_dir is not None:
            reg.attach_bundled(lm.local_dir)
        return cls(saes=reg)
