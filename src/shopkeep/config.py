"""One configuration tree: defaults here, a TOML file over them, environment variables over that.

Environment overrides are named ``SHOPKEEP_<SECTION>__<KEY>`` (double underscore between section and
key), e.g. ``SHOPKEEP_STORAGE__URI=postgresql://...``. Unknown sections or keys are errors, not
silently ignored typos.

>>> cfg = load_config(env={"SHOPKEEP_EVENTS__SESSION_TIMEOUT_S": "600"})
>>> cfg.events.session_timeout_s, cfg.storage.uri
(600, 'sqlite:///.shopkeep/shopkeep.db')
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from shopkeep.errors import ConfigError

__all__ = [
    "BusConfig",
    "Config",
    "EvaluationConfig",
    "EventsConfig",
    "ExploreConfig",
    "RankingConfig",
    "ServingConfig",
    "StorageConfig",
    "WebhooksConfig",
    "load_config",
]

ENV_PREFIX = "SHOPKEEP_"


@dataclass(frozen=True)
class StorageConfig:
    """Where durable data (``uri``) and hot per-session state (``online_uri``) live."""

    uri: str = "sqlite:///.shopkeep/shopkeep.db"
    online_uri: str = "memory://"


@dataclass(frozen=True)
class EventsConfig:
    """Event ingestion: sessionization gap and batch limits; ``retention_days`` > 0: events older than
    that are purged by ``shopkeep.pipeline.erasure.purge_expired`` and refused at ingest (0: kept forever)."""

    session_timeout_s: int = 1800
    max_line_bytes: int = 1_000_000
    batch_size: int = 5000
    retention_days: float = 0.0


@dataclass(frozen=True)
class ServingConfig:
    """HTTP server: address, API keys (hashed ``sha256:SALT:HEX:read+ingest,...`` entries and/or a keys file;
    plaintext only with ``allow_plaintext_keys``; see serving.auth), per-key rate limit (token bucket:
    ``rate_limit_per_s`` > 0 turns it on, ``rate_limit_burst`` tokens saved up (0: one second's worth),
    shared in Redis via ``rate_limit_uri`` or a redis:// online state), CORS origins (comma-separated,
    empty: off), body size limit and where trained model artifacts live."""

    host: str = "127.0.0.1"
    port: int = 8000
    auth: bool = True
    api_keys: str = ""
    api_keys_file: str = ""
    allow_plaintext_keys: bool = False
    rate_limit_per_s: float = 0.0
    rate_limit_burst: int = 0
    rate_limit_uri: str = ""
    cors_origins: str = ""
    max_body_bytes: int = 1_000_000
    artifacts_dir: str = ".shopkeep/artifacts"


@dataclass(frozen=True)
class EvaluationConfig:
    """Evaluation defaults: seed and where research datasets are looked for."""

    seed: int = 42
    data_dir: str = "../shared/data"


@dataclass(frozen=True)
class RankingConfig:
    """Re-ranking objective (weights >= 0, not all 0; ``version`` is stamped on every served slate),
    expected return cost as a fraction of the price, and whether ``shopkeep train`` fits the learned
    re-ranker (LightGBM; the engine falls back to the non-learned ranker without it)."""

    relevance: float = 1.0
    margin: float = 0.0
    conversion: float = 0.0
    return_cost_fraction: float = 0.0
    version: str = "1"
    learned: bool = True
    trees: int = 80


@dataclass(frozen=True)
class ExploreConfig:
    """Exploration of served slates (explore.slates): ``epsilon`` on the comma-separated ``surfaces``,
    ``pool_extra`` items beyond the slate, new items (created within ``new_item_days``, at most
    ``max_new_items``) given ``new_item_share`` of the slots (``max_epsilon`` caps the mixing)."""

    enabled: bool = True
    surfaces: str = "home"
    epsilon: float = 0.05
    pool_extra: int = 5
    new_item_days: float = 14.0
    new_item_share: float = 0.02
    max_new_items: int = 3
    max_epsilon: float = 0.5
    seed: int = 0


@dataclass(frozen=True)
class BusConfig:
    """The event bus API workers publish accepted events to (``""``: none; ``redis://...?stream=S``,
    ``nats://...``, ``memory://NAME``; see shopkeep.events.bus) and ``shopkeep worker`` consumes."""

    uri: str = ""


@dataclass(frozen=True)
class WebhooksConfig:
    """Signed webhooks (``POST /v1/webhooks/events``): the shared HMAC secret (``""``: endpoint off) and
    how far the signed timestamp may be from now."""

    secret: str = ""
    tolerance_s: int = 300


@dataclass(frozen=True)
class Config:
    """The whole configuration tree."""

    storage: StorageConfig = field(default_factory=StorageConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    bus: BusConfig = field(default_factory=BusConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    ranking: RankingConfig = field(default_factory=RankingConfig)
    explore: ExploreConfig = field(default_factory=ExploreConfig)

    def to_dict(self) -> dict[str, Any]:
        """The effective configuration as plain data (for logging it)."""
        return dataclasses.asdict(self)


def _coerce(section: str, key: str, raw: Any, target: Any) -> Any:
    name = f"{section}.{key}"
    if target is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            return raw.lower() in {"1", "true", "yes", "on"}
    elif target is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str):
            try:
                return int(raw)
            except ValueError:
                pass
    elif target is float:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, str):
            try:
                return float(raw)
            except ValueError:
                pass
    elif target is str and isinstance(raw, str):
        return raw
    raise ConfigError(
        f"{name}={raw!r}: expected {getattr(target, '__name__', target)}",
        {"key": name, "value": raw},
    )


def _merge(base: Config, overrides: Mapping[str, Mapping[str, Any]]) -> Config:
    sections: dict[str, Any] = {}
    hints = get_type_hints(Config)
    for section, values in overrides.items():
        if section not in hints:
            raise ConfigError(f"unknown config section {section!r}", {"key": section})
        if not isinstance(values, Mapping):
            raise ConfigError(f"config section {section!r} must be a table", {"key": section})
        current = getattr(base, section)
        types = get_type_hints(type(current))
        changes = {}
        for key, raw in values.items():
            if key not in types:
                raise ConfigError(f"unknown config key {section}.{key}", {"key": f"{section}.{key}"})
            changes[key] = _coerce(section, key, raw, types[key])
        sections[section] = dataclasses.replace(current, **changes)
    return dataclasses.replace(base, **sections)


def _validate(cfg: Config) -> Config:
    if cfg.events.session_timeout_s <= 0:
        raise ConfigError("events.session_timeout_s must be > 0", {"key": "events.session_timeout_s"})
    if not 0.0 <= cfg.events.retention_days < float("inf"):
        raise ConfigError(f"events.retention_days={cfg.events.retention_days}: must be >= 0 (0: keep forever)",
                          {"key": "events.retention_days"})
    if not 0 < cfg.serving.port < 65536:
        raise ConfigError(f"serving.port={cfg.serving.port}: not a TCP port", {"key": "serving.port"})
    if cfg.serving.rate_limit_per_s < 0 or cfg.serving.rate_limit_burst < 0:
        raise ConfigError(f"serving.rate_limit_per_s={cfg.serving.rate_limit_per_s}, rate_limit_burst="
                          f"{cfg.serving.rate_limit_burst}: must be >= 0 (0: off / one second's worth)",
                          {"key": "serving.rate_limit_per_s"})
    for key in ("uri", "online_uri"):
        uri = getattr(cfg.storage, key)
        if "://" not in uri:
            raise ConfigError(f"storage.{key}={uri!r}: expected a URI such as sqlite:///path",
                              {"key": f"storage.{key}", "value": uri})
    if not 0.0 < cfg.explore.epsilon < 1.0 or not cfg.explore.epsilon <= cfg.explore.max_epsilon < 1.0:
        raise ConfigError(f"explore.epsilon={cfg.explore.epsilon}, max_epsilon={cfg.explore.max_epsilon}: need "
                          "0 < epsilon <= max_epsilon < 1", {"key": "explore.epsilon"})
    for key in ("relevance", "margin", "conversion"):
        if getattr(cfg.ranking, key) < 0:
            raise ConfigError(f"ranking.{key}={getattr(cfg.ranking, key)}: must be >= 0", {"key": f"ranking.{key}"})
    return cfg


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load defaults, then the TOML file at ``path`` (if given), then ``SHOPKEEP_*`` variables."""
    cfg = Config()
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}", {"key": "path", "value": str(path)}) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}", {"key": "path"}) from None
        cfg = _merge(cfg, data)
    environ = os.environ if env is None else env
    from_env: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX) and "__" in name:
            section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
            from_env.setdefault(section, {})[key] = value
    return _validate(_merge(cfg, from_env))
