"""All configuration, read once by the app factory (``TRIAGE_`` prefix, ``_`` between section
and field: ``TRIAGE_NATS_URL`` sets ``nats.url``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from triage.errors import ConfigError


class NatsSettings(BaseModel):
    url: str | None = Field(None, description="External NATS; unset = embedded nats-server")
    embedded_port: int = 4222
    embedded_monitor_port: int = 8222
    stream: str = "TRIAGE"
    subject_prefix: str = "triage"
    replicas: int = Field(1, ge=1, le=5)
    max_age_s: float = Field(7 * 24 * 3600, gt=0)
    # Longer than Alertmanager's retry horizon so its resends are dropped by JetStream.
    duplicate_window_s: float = Field(600, gt=0)
    max_bytes: int = Field(-1, description="Stream size cap in bytes, -1 = unlimited")
    kv_bucket: str = "triage_incidents"
    ack_wait_s: float = Field(30, gt=0)
    max_deliver: int = Field(5, ge=1)
    publish_timeout_s: float = Field(2.0, gt=0)
    fetch_batch: int = Field(8, ge=1)
    max_workers: int = Field(4, ge=1, description="Concurrent messages per subscriber")


class IngestSettings(BaseModel):
    max_body_bytes: int = Field(1024 * 1024, gt=0)
    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None
    basic_username: str | None = None
    basic_password: SecretStr | None = None
    basic_password_file: Path | None = None
    allow_unauthenticated: bool = False


class IncidentSettings(BaseModel):
    debounce_s: float = Field(30, ge=0, description="Wait before re-investigating a grown incident")


class InvestigationSettings(BaseModel):
    total_deadline_s: float = Field(20, gt=0)
    collector_deadline_s: float = Field(10, gt=0)
    lookback_s: float = Field(1800, gt=0, description="Baseline window before the onset")
    after_s: float = Field(600, gt=0, description="Incident window after the onset")
    scenario_dir: Path | None = Field(None, description="Scenario files for the demo and tests")


class PrometheusSettings(BaseModel):
    url: str | None = None
    step_s: float = Field(60, gt=0)
    timeout_s: float = Field(5, gt=0)


class Route(BaseModel):
    match: dict[str, str] = Field(default_factory=dict)
    team: str
    channel: str


class DeliverySettings(BaseModel):
    console: bool = True
    jsonl_path: Path | None = None
    default_team: str = "unowned"
    default_channel: str = "#incidents"
    routes: list[Route] = Field(default_factory=list)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TRIAGE_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="ignore",
    )

    state_dir: Path = Path(".triage")
    http_host: str = Field("127.0.0.1", description="Every process serves probes and /metrics")
    http_port: int = 9095
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "info"
    nats: NatsSettings = NatsSettings()
    ingest: IngestSettings = IngestSettings()
    incidents: IncidentSettings = IncidentSettings()
    investigation: InvestigationSettings = InvestigationSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    delivery: DeliverySettings = DeliverySettings()

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        inv = self.investigation
        if inv.collector_deadline_s > inv.total_deadline_s:
            raise ValueError("investigation collector_deadline_s exceeds total_deadline_s")
        return self

    def bearer_token(self) -> str | None:
        return _secret(self.ingest.bearer_token, self.ingest.bearer_token_file, "bearer token")

    def basic_password(self) -> str | None:
        return _secret(
            self.ingest.basic_password, self.ingest.basic_password_file, "basic password"
        )


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
