"""One settings tree: defaults < YAML file < ``LLMSERVE_*`` environment < CLI flags.

Everything the process needs is read here once and handed to ``create_app(settings)``; nothing else
reads the environment. One module per section; the root ``Settings`` and ``load_settings`` are in
``settings``. Every name is importable from ``llmserve.config`` itself.
"""

from llmserve.config.cache import CacheSettings, ExactCacheSettings, SemanticCacheSettings
from llmserve.config.guardrails import GuardrailSettings, PiiEntity
from llmserve.config.jobs import JobSettings
from llmserve.config.limits import LimitRule, LimitSettings, QueueSettings, UsageSettings
from llmserve.config.models import (
    BUNDLED_MODEL_ID,
    EngineSettings,
    ModelDeployment,
    Pricing,
    ProviderKind,
    deployment_id_of,
)
from llmserve.config.observability import ObservabilitySettings, TracingSettings
from llmserve.config.routing import CircuitBreakerSettings, ComplexityRouting, RouterSettings
from llmserve.config.secrets import MIN_SECRET_CHARS, resolve_secret
from llmserve.config.server import DEFAULT_PORT, AuthSettings, ServerSettings
from llmserve.config.settings import (
    SQLITE_FILENAME,
    ConfigError,
    Settings,
    default_data_dir,
    describe_validation_error,
    load_settings,
    sqlite_url_for,
)

__all__ = [
    "BUNDLED_MODEL_ID",
    "DEFAULT_PORT",
    "MIN_SECRET_CHARS",
    "SQLITE_FILENAME",
    "AuthSettings",
    "CacheSettings",
    "CircuitBreakerSettings",
    "ComplexityRouting",
    "ConfigError",
    "EngineSettings",
    "ExactCacheSettings",
    "GuardrailSettings",
    "JobSettings",
    "LimitRule",
    "LimitSettings",
    "ModelDeployment",
    "ObservabilitySettings",
    "PiiEntity",
    "Pricing",
    "ProviderKind",
    "QueueSettings",
    "RouterSettings",
    "SemanticCacheSettings",
    "ServerSettings",
    "Settings",
    "TracingSettings",
    "UsageSettings",
    "default_data_dir",
    "deployment_id_of",
    "describe_validation_error",
    "load_settings",
    "resolve_secret",
    "sqlite_url_for",
]
