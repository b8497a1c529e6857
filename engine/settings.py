"""The engine's settings: defaults, then ``interpscope.toml`` (if present), then environment.

Environment variables use the ``INTERPSCOPE_`` prefix, e.g. ``INTERPSCOPE_PORT=8800``.
"""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_cache_dir, user_data_dir
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = REPO_ROOT / "assets"
DEFAULT_MODEL_DIR = ASSETS_DIR / "organism"
DEFAULT_DATA_DIR = Path(user_data_dir("interpscope")) / "data"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def default_model() -> str | None:
    return str(DEFAULT_MODEL_DIR) if (DEFAULT_MODEL_DIR / "config.json").exists() else None


class EngineSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="INTERPSCOPE_", toml_file="interpscope.toml", extra="ignore"
    )

    model: str | None = None
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    device: str | None = None
    dtype: str = "float32"
    # Longest prompt the engine accepts (and the n_ctx its masks are built for); None: 2048
    # on CPU and MPS, 4096 on CUDA (engine/loading.py says why), never past the model's own.
    max_context: int | None = None
    # Memory all loaded models may use together, in MiB; None: the device's free memory (a
    # second model is refused when it does not fit beside the first: engine/memory.py)
    memory_limit_mb: int | None = None
    n_devices: int = 1  # split the model's layers across this many CUDA GPUs
    cache_dir: Path = Path(user_cache_dir("interpscope")) / "results"
    cache_size_mb: int = 1024
    memory_cache_mb: int = 256
    graphs_size_mb: int = 2048
    max_runs: int = 8
    # files and datasets the engine reads on a user's behalf (text files, datasets, local SAE
    # and model directories) must lie inside one of these (symlinks followed); the repo's
    # assets and a local --model directory are always readable (engine/paths.py)
    data_dirs: list[Path] = [DEFAULT_DATA_DIR]
    # Host names clients may use besides the bound address (and the loopback names when
    # bound to loopback); "*" turns the Host check off (engine/security.py)
    allowed_hosts: list[str] = []

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def check_exposure(self) -> None:
        """Binding beyond loopback needs a token that clients must send."""
        if self.host not in LOOPBACK_HOSTS and not self.token:
            raise SystemExit(
                f"Refusing to listen on {self.host} without a token: set --token or "
                "INTERPSCOPE_TOKEN, and give the same token to the app."
            )
