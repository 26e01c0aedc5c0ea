"""All configuration, read once by the app factory (``TRIAGE_`` prefix, ``_`` between section
and field: ``TRIAGE_NATS_URL`` sets ``nats.url``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from triage.errors import ConfigError


class NatsSettings(BaseModel):
    url: str | None = Field(None, description="External NATS; unset = embedded nats-server")
    embedded_port: int = Field(4222, description="Client port of the embedded nats-server")
    embedded_monitor_port: int = Field(8222, description="Its monitoring port")
    stream: str = Field("TRIAGE", description="JetStream stream holding every triage subject")
    subject_prefix: str = Field(
        "triage",
        description="Subjects: PREFIX.alerts, .investigate, .followup, .deliver, "
        ".deliver.paced, .deadletter.STAGE",
    )
    replicas: int = Field(1, ge=1, le=5, description="Stream and KV replicas (3 in production)")
    retention: Literal["limits", "workqueue"] = Field(
        "limits",
        description="limits keeps handled messages until max_age (replayable); "
        "workqueue drops them once acknowledged",
    )
    max_age_s: float = Field(7 * 24 * 3600, gt=0, description="How long messages are kept")
    # Longer than Alertmanager's retry horizon so its resends are dropped by JetStream.
    duplicate_window_s: float = Field(600, gt=0, description="JetStream de-duplication window")
    max_bytes: int = Field(-1, description="Stream size cap in bytes, -1 = unlimited")
    kv_bucket: str = Field("triage_incidents", description="Key-value bucket of incident state")
    ack_wait_s: float = Field(
        30, gt=0, description="Redelivery after this long without ack or heartbeat"
    )
    max_deliver: int = Field(5, ge=1, description="Deliveries before a message is dead-lettered")
    publish_timeout_s: float = Field(2.0, gt=0, description="Wait for JetStream's ack, then 503")
    fetch_batch: int = Field(8, ge=1, description="Messages pulled per fetch")
    max_workers: int = Field(4, ge=1, description="Concurrent messages per subscriber")


class IngestSettings(BaseModel):
    max_body_bytes: int = Field(
        1024 * 1024,
        gt=0,
        description="Larger webhooks get 413 (so do bodies over the broker's max_payload less "
        "the envelope)",
    )
    body_timeout_s: float = Field(
        10, gt=0, description="A request body not received within this long gets 408"
    )
    bearer_token: SecretStr | None = Field(
        None, description="Alertmanager's authorization credentials"
    )
    bearer_token_file: Path | None = Field(None, description="The same, read from a file")
    basic_username: str | None = Field(None, description="Alertmanager's basic_auth username")
    basic_password: SecretStr | None = Field(None, description="Its password")
    basic_password_file: Path | None = Field(None, description="The same, read from a file")
    allow_unauthenticated: bool = Field(False, description="Accept webhooks without credentials")


class IncidentSettings(BaseModel):
    debounce_s: float = Field(30, ge=0, description="Wait before re-investigating a grown incident")
    correlation: bool = Field(
        True, description="Attach alert groups that share a cause to one parent incident"
    )
    correlation_window_s: float = Field(
        900, ge=0, description="A group attaches to a parent first seen at most this long before"
    )
    correlation_confidence: float = Field(
        0.5, ge=0, le=1, description="Least confidence of both leading suspects to call them one"
    )
    storm_debounce_s: float = Field(
        10, ge=0, description="Wait after a group attaches before re-investigating its parent"
    )
    storm_reinvestigations: int = Field(
        4, ge=0, description="Re-investigations of a parent owed to attached groups, at most"
    )


class InvestigationSettings(BaseModel):
    total_deadline_s: float = Field(20, gt=0, description="Whole investigation")
    collector_deadline_s: float = Field(10, gt=0, description="Each collector")
    lookback_s: float = Field(1800, gt=0, description="Baseline window before the onset")
    after_s: float = Field(600, gt=0, description="Incident window after the onset")
    follow_up_s: float = Field(
        300,
        ge=0,
        description="Investigate again this long after the onset, with the data that arrived "
        "since; the thread gets the new draft only if the cause changed (0 = never)",
    )
    scenario_dir: Path | None = Field(None, description="Scenario files for the demo and tests")
    cache_ttl_s: float = Field(
        30, ge=0, description="Same query from several incidents answered once within this time"
    )
    neighbour_namespaces: int = Field(
        4,
        ge=0,
        description="Namespaces one call away from the alerts' (mesh or tracing request series) "
        "also read, at most; 0 = only the alerts' own",
    )
    prompt_budget_tokens: int = Field(
        4000,
        gt=0,
        description="Prompt tokens (offline estimate) the ranked evidence is packed into",
    )


class RedactionSettings(BaseModel):
    emails: bool = Field(True, description="Redact e-mail addresses in evidence")
    extra_patterns: list[str] = Field(
        default_factory=list,
        description="More regular expressions to redact (JSON list); a group named secret "
        "limits it to that group",
    )


class LokiSettings(BaseModel):
    url: str | None = Field(None, description="Loki base URL; unset = pod logs from Kubernetes")
    limit: int = Field(5000, gt=0, description="Log lines per namespace and investigation")


class PrometheusSettings(BaseModel):
    url: str | None = Field(None, description="Prometheus base URL; unset = no metrics collector")
    step_s: float = Field(60, gt=0, description="query_range resolution")
    timeout_s: float = Field(5, gt=0, description="Per HTTP request")
    queries: list[str] = Field(
        default_factory=lambda: ['{namespace="$namespace"}'],
        description="JSON list of PromQL (golden signals) run per alert namespace ($namespace), "
        "or per workload the alert names ($workload, with its $namespace); "
        "the alert's own expression is always added",
    )


class DeliverySettings(BaseModel):
    console: bool = Field(True, description="Print drafts on stdout")
    jsonl_path: Path | None = Field(None, description="Append drafts to this JSON Lines file")
    webhook_url: str | None = Field(
        None, description="POST every draft and resolve as JSON here (other chat tools)"
    )
    webhook_timeout_s: float = Field(5, gt=0, description="Per webhook request")
    webhook_deadline_s: float = Field(
        30, gt=0, description="Retries of a transient webhook failure stop after this long"
    )


class RoutingSettings(BaseModel):
    file: Path | None = Field(
        None, description="Routing rules (YAML, see README); unset = everything to the default"
    )
    default_team: str = Field(
        "unowned", description="When no rule matches and the file has no default"
    )
    default_channel: str = Field("#incidents", description="Its channel")
    ownership_cache_s: float = Field(
        60, ge=0, description="How long workload/namespace ownership read from Kubernetes is reused"
    )
    team_label: str = Field(
        "team",
        description="Alert label naming the owning team; used when no rule matches, before the "
        "default route (empty = ignore)",
    )
    team_channel: str = Field(
        "#{team}",
        description="The channel of a team named by that label, unless a rule of the file names "
        "the team",
    )

    @field_validator("team_channel")
    @classmethod
    def _has_team(cls, value: str) -> str:
        if "{team}" not in value or not value.startswith("#"):
            raise ValueError("must be a channel name containing {team}, e.g. #{team}-alerts")
        return value


class KubernetesSettings(BaseModel):
    kubeconfig: Path | None = Field(None, description="kubeconfig file; unset = no Kubernetes")
    context: str | None = Field(None, description="kubeconfig context; unset = its current one")
    in_cluster: bool = Field(False, description="Use the pod's service account instead")
    timeout_s: float = Field(5, gt=0, description="Per Kubernetes API request")


class SlackSettings(BaseModel):
    bot_token: SecretStr | None = Field(
        None, description="Bot token (xoxb-, scopes chat:write, files:write); unset = no Slack"
    )
    bot_token_file: Path | None = Field(None, description="The same, read from a file")
    signing_secret: SecretStr | None = Field(
        None, description="Verifies interactivity requests (feedback buttons)"
    )
    signing_secret_file: Path | None = Field(None, description="The same, read from a file")
    base_url: str = Field("https://slack.com/api/", description="Slack Web API base URL")
    timeout_s: float = Field(10, gt=0, description="Per Slack API request")
    channel_interval_s: float = Field(
        1.0, ge=0, description="Least time between two messages to one channel"
    )
    rate_limit_retries: int = Field(
        10, ge=0, description="Retries of a 429 after its Retry-After, then the bus redelivers"
    )
    graphs: bool = Field(True, description="Upload a PNG of the alerting series into the thread")


class LLMSettings(BaseModel):
    base_url: str | None = Field(
        None,
        description="OpenAI-compatible gateway (LiteLLM, vLLM), e.g. http://litellm:4000/v1; "
        "unset = heuristic analyzer only",
    )
    api_key: SecretStr | None = Field(None, description="Gateway API key")
    api_key_file: Path | None = Field(None, description="The same, read from a file")
    model: str = Field("triage-rca", description="Model (gateway alias) asked first")
    fallback_models: list[str] = Field(
        default_factory=list, description="Asked in order when the model stays unavailable (JSON)"
    )
    timeout_s: float = Field(8, gt=0, description="Per gateway request")
    # With fast collectors the heuristic draft then goes out within 10 s of the start.
    deadline_s: float = Field(
        8,
        gt=0,
        description="Whole LLM analysis (queue, retries, fallback models, repair) from its "
        "start; past it the heuristic draft is used",
    )
    max_retries: int = Field(2, ge=0, description="Retries of transient errors, per model")
    circuit_failures: int = Field(
        5, ge=1, description="Consecutive failed calls that open the circuit breaker"
    )
    circuit_open_s: float = Field(
        30, gt=0, description="While open, drafts skip the gateway; then one call probes it"
    )
    max_concurrency: int = Field(16, ge=1, description="In-flight gateway calls per worker, most")
    min_concurrency: int = Field(1, ge=1, description="The adaptive limit never goes below this")
    max_tokens: int = Field(1200, gt=0, description="Completion tokens per call, most")
    prompt_version: str = Field("v1", description="Folder of prompt templates under prompt_dir")
    prompt_dir: Path | None = Field(
        None, description="Prompt templates; unset = those shipped in the package (prompts/)"
    )
    price_per_1k_prompt: float | dict[str, float] = Field(
        0.0, description='Price per 1k prompt tokens: one number or {"model": price, "*": default}'
    )
    price_per_1k_completion: float | dict[str, float] = Field(
        0.0, description="The same for completion tokens"
    )

    @model_validator(mode="after")
    def _limits(self) -> LLMSettings:
        if self.min_concurrency > self.max_concurrency:
            raise ValueError("TRIAGE_LLM_MIN_CONCURRENCY exceeds TRIAGE_LLM_MAX_CONCURRENCY")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TRIAGE_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="ignore",
    )

    state_dir: Path = Field(Path(".triage"), description="Embedded NATS data, dev token")
    http_host: str = Field("127.0.0.1", description="Every process serves probes and /metrics")
    http_port: int = Field(9095, description="Webhook (ingest), /healthz, /readyz, /metrics")
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto = console on a terminal, JSON otherwise"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="debug, info, warning, error"
    )
    nats: NatsSettings = NatsSettings()
    ingest: IngestSettings = IngestSettings()
    incidents: IncidentSettings = IncidentSettings()
    investigation: InvestigationSettings = InvestigationSettings()
    redaction: RedactionSettings = RedactionSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    loki: LokiSettings = LokiSettings()
    delivery: DeliverySettings = DeliverySettings()
    routing: RoutingSettings = RoutingSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()
    slack: SlackSettings = SlackSettings()
    llm: LLMSettings = LLMSettings()

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        inv = self.investigation
        if inv.collector_deadline_s > inv.total_deadline_s:
            raise ValueError(
                f"TRIAGE_INVESTIGATION_COLLECTOR_DEADLINE_S ({inv.collector_deadline_s:g}) "
                f"exceeds TRIAGE_INVESTIGATION_TOTAL_DEADLINE_S ({inv.total_deadline_s:g})"
            )
        # The investigation is cut at total_deadline_s + 5 s: past it there would be no draft,
        # not even the heuristic one the LLM deadline falls back to.
        if self.llm.base_url and self.llm.deadline_s + 1 >= inv.total_deadline_s + 5:
            raise ValueError(
                f"TRIAGE_LLM_DEADLINE_S ({self.llm.deadline_s:g}) must end at least 4 s before "
                f"TRIAGE_INVESTIGATION_TOTAL_DEADLINE_S ({inv.total_deadline_s:g}) does, so that "
                "the heuristic fallback still has time"
            )
        return self

    def bearer_token(self) -> str | None:
        return _secret(self.ingest.bearer_token, self.ingest.bearer_token_file, "bearer token")

    def basic_password(self) -> str | None:
        return _secret(
            self.ingest.basic_password, self.ingest.basic_password_file, "basic password"
        )

    def slack_bot_token(self) -> str | None:
        return _secret(self.slack.bot_token, self.slack.bot_token_file, "Slack bot token")

    def slack_signing_secret(self) -> str | None:
        return _secret(
            self.slack.signing_secret, self.slack.signing_secret_file, "Slack signing secret"
        )

    def llm_api_key(self) -> str | None:
        return _secret(self.llm.api_key, self.llm.api_key_file, "LLM API key")


def load_settings() -> Settings:
    """The settings from the environment, or a ConfigError that names the variable at fault and
    what it expects, one line each (never the value of a secret)."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(
            "\n".join(_explain(e) for e in exc.errors()), setting="environment"
        ) from exc
    except SettingsError as exc:
        raise ConfigError(_unparsable(str(exc)), setting="environment") from exc


def _variable(loc: tuple[int | str, ...]) -> str:
    return "TRIAGE_" + "_".join(str(p) for p in loc[:2]).upper()


def _field(loc: tuple[int | str, ...]) -> FieldInfo | None:
    fields: dict[str, FieldInfo] = Settings.model_fields
    found = None
    for part in loc[:2]:
        found = fields.get(str(part))
        if found is None:
            return None
        annotation = found.annotation
        fields = (
            annotation.model_fields
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else {}
        )
    return found


def _explain(error: ErrorDetails) -> str:
    loc = tuple(error["loc"])
    msg = error["msg"].removeprefix("Value error, ")
    if not loc:  # a check across settings: its message names the variables
        return msg
    name = _variable(loc)
    field = _field(loc)
    what = f" ({field.description})" if field is not None and field.description else ""
    secret = any(w in name for w in ("TOKEN", "PASSWORD", "SECRET", "KEY"))
    got = "" if secret or error["type"] == "missing" else f", got {error.get('input')!r}"
    return f"{name}: {msg[0].lower()}{msg[1:]}{got}{what}"


def _unparsable(message: str) -> str:
    """pydantic-settings says only which section failed to parse: find the variable whose value
    is not the JSON its field needs (lists and maps are given as JSON)."""
    section = message.split('"')[1] if message.count('"') >= 2 else ""
    prefix = f"TRIAGE_{section}_".upper()
    for name, value in sorted(os.environ.items()):
        if not name.upper().startswith(prefix):
            continue
        try:
            json.loads(value)
        except ValueError:
            field = _field((section, name[len(prefix) :].lower()))
            if field is None or field.annotation in (str, Path, SecretStr, str | None):
                continue
            what = f" ({field.description})" if field.description else ""
            return f'{name}: expected JSON, e.g. ["..."] for a list, got {value!r}{what}'
    return f"{message}: a TRIAGE_{section.upper()}_* variable is not the JSON its field needs"


def _secret(value: SecretStr | None, path: Path | None, what: str) -> str | None:
    if value is not None:
        return value.get_secret_value()
    if path is None:
        return None
    try:
        secret = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc}", setting=str(path)) from exc
    if not secret:
        raise ConfigError(f"{what} file {path} is empty", setting=str(path))
    return secret


def settings_reference() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for every setting, for the README."""
    rows: list[tuple[str, str, str]] = []
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for sub, subfield in annotation.model_fields.items():
                default = subfield.get_default(call_default_factory=True)
                rows.append(
                    (f"TRIAGE_{name}_{sub}".upper(), _show(default), subfield.description or "")
                )
        else:
            rows.append((f"TRIAGE_{name}".upper(), _show(field.default), field.description or ""))
    return rows


def _show(value: object) -> str:
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if value is None:
        return "(unset)"
    return str(value)
