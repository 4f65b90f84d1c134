"""The mailer's settings (`CEPBUS_MAILER_`): its SMTP server, its address book and its outbox."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from cepbus.runtime.settings import ServiceSettings
from cepbus.trust.modes import TrustProblem
from services.mailer.addresses import check_address

#: The largest password file read (a password, not a document).
PASSWORD_FILE_MAX_BYTES = 4096


class MailerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CEPBUS_MAILER_", extra="ignore")

    metrics_port: int = 9107
    group_id: str = "cepbus-mailer"
    # The mailer sends no event but the dead letters of what it cannot read, signed in the notifier's
    # role: the bus's producer kinds have no mailer (cepbus/contract/topics.py). In production, list
    # `cep-bus-mailer` with role `notifier` in the signed directory (cep-bus directory add-service) and
    # set CEPBUS_MAILER_SERVICE_ORG_ID to it, with its own key (CEPBUS_MAILER_STATEMENT_KEY_PATH).
    service_org_id: str = "cep-bus-notifier"
    # The outbox of the emails (services/mailer/store.py): SQLite here, PostgreSQL in production.
    database_url: str = "sqlite:///.cepbus/mailer.db"

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None  # or, better, a file (a mounted Secret): smtp_password_path
    smtp_password_path: Path | None = None
    smtp_timeout_s: float = Field(default=10.0, gt=0)

    from_address: str = "cep-bus <notifications@cep-bus.example.invalid>"
    # The partner inbox (services/inbox) the emails link to: `<base>/referrals/<referral id>`.
    inbox_base_url: str = "http://127.0.0.1:9105"
    # org id -> list of addresses (JSON). None: development addresses, refused in production.
    addresses_path: Path | None = None

    send_interval_s: float = Field(default=1.0, gt=0)  # how often the outbox is looked at
    send_batch_max: int = Field(default=50, ge=1)  # emails tried per look, at most
    send_budget_s: float = Field(default=5.0, gt=0)  # no new email started after this long in one look
    retry_first_s: float = Field(default=5.0, gt=0)  # the first retry's delay, doubled at each failure
    retry_max_s: float = Field(default=3600.0, gt=0)  # ... up to this

    @field_validator("from_address")
    @classmethod
    def _from_is_an_address(cls, value: str) -> str:
        check_address(value, "CEPBUS_MAILER_FROM_ADDRESS", display_name=True)
        return value

    @field_validator("inbox_base_url")
    @classmethod
    def _inbox_is_a_web_address(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")) or any(c.isspace() for c in value):
            raise ValueError("CEPBUS_MAILER_INBOX_BASE_URL must be an http:// or https:// address")
        return value.rstrip("/")

    def password(self) -> str | None:
        """The SMTP password, from its file first (a mounted Secret), else from the environment; a
        missing file or a username without a password is a configuration the mailer refuses."""
        secret: str | None = None
        if self.smtp_password_path is not None:
            try:
                data = self.smtp_password_path.read_bytes()[: PASSWORD_FILE_MAX_BYTES + 1]
            except OSError as exc:
                raise ValueError(
                    f"cannot read CEPBUS_MAILER_SMTP_PASSWORD_PATH {str(self.smtp_password_path)!r}: "
                    f"{exc.strerror or exc}"
                ) from None
            if len(data) > PASSWORD_FILE_MAX_BYTES:
                raise ValueError("CEPBUS_MAILER_SMTP_PASSWORD_PATH is not a password file (too large)")
            try:
                secret = data.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise ValueError("CEPBUS_MAILER_SMTP_PASSWORD_PATH is not UTF-8 text") from None
        elif self.smtp_password is not None:
            secret = self.smtp_password.get_secret_value()
        if self.smtp_username and not secret:
            raise ValueError(
                "CEPBUS_MAILER_SMTP_USERNAME is set without a password "
                "(CEPBUS_MAILER_SMTP_PASSWORD_PATH or CEPBUS_MAILER_SMTP_PASSWORD)"
            )
        return secret

    def trust_problems(self) -> list[TrustProblem]:
        """What production refuses here: credentials sent in clear, links to an inbox over plain HTTP."""
        problems = []
        if self.smtp_username and not self.smtp_starttls:
            problems.append(
                TrustProblem(
                    "the mailer would send its SMTP password in clear",
                    "set CEPBUS_MAILER_SMTP_STARTTLS=true",
                )
            )
        if not self.inbox_base_url.startswith("https://"):
            problems.append(
                TrustProblem(
                    f"the emails link to an inbox over plain HTTP ({self.inbox_base_url})",
                    "set CEPBUS_MAILER_INBOX_BASE_URL to the partner inbox's https:// address",
                )
            )
        return problems
