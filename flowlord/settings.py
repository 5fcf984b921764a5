"""Settings of `flowlord serve`: defaults < a TOML config file < FLOWLORD_* variables < flags.

    settings = load_settings(config="flowlord.toml", env=os.environ, flags={"http_port": 9000})

The config file accepts the Go flowlord's option names (spec §4), matched case-insensitively as
its TOML decoder matches them (`Done_Topic` is `done_topic`), plus flowlord's own:

    workflow = "workflows/"      # the workflow file or folder (the command's WORKFLOW_PATH wins)
    refresh = "2s"               # how often the workflow files are checked (Go: 15m); 0 is refused
    done_topic = "done"          # results of the workers
    file_topic = "files"         # file messages; "-" or "" switches the files consumer off
    failed_topic = "retry-failed"  # tasks whose retries ran out; "-" or "": alerts only
    host = "localhost"           # the host named in alert texts (Go's `host`)
    status_port = 8080           # Go's name of http_port
    http_host = "127.0.0.1"      # where the web server listens
    http_port = 8080             # 0: no web server
    bus = ""                     # nats://host:4222[,host2:4222] ; empty: an embedded nats-server
    nats_port = 4222             # the embedded server's port (0: any free port)
    data_dir = ".flowlord"       # the store file and the embedded server's JetStream store
    timezone = "UTC"             # the zone of cron specs without TZ=
    catch_up = "latest"          # cron fires missed while down: latest, all or none
    watch = ""                   # a local folder whose new files go to the files topic
    token = ""                   # (reserved for the dashboard's API)
    log_format = "text"          # text or json (one JSON object per line)
    log_level = "info"           # debug, info, warning or error

    [slack]                      # kept for alerting: url, prefix, channel, title,
    url = ""                     # min_frequency (minfrequency, default 5m),
    min_frequency = "5m"         # max_frequency (maxfrequency, default 16 x min)

    [sqlite]                     # also spelled [cache], as in the Go README
    local_path = ""              # localpath; default: DATA_DIR/flowlord.db (":memory:" works)
    backuppath = ""              # restore from it when the store is missing; back up to it
    backup_interval = "1h"
    task-ttl = "4h"              # at least 1h, as in Go
    retention = "2160h"          # history kept (Go has no default: 0 deletes it daily)

Durations are Go durations (`90s`, `1h30m`, `2160h`). An environment variable is
`FLOWLORD_<NAME>` (`FLOWLORD_HTTP_PORT`, `FLOWLORD_DATA_DIR`, `FLOWLORD_SLACK_URL`,
`FLOWLORD_SQLITE_RETENTION`; `FLOWLORD_CONFIG` names the config file). Every problem is
reported at once as `where: message` (`flowlord.toml:3: …`, `FLOWLORD_REFRESH: …`, `--port: …`)
by `SettingsError`; the CLI prints them and exits 2.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import timedelta
from typing import Any, Iterable, Literal, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

__all__ = [
    "DEFAULTS_NOTE", "ServeSettings", "SettingsError", "SlackSettings", "StoreSettings",
    "go_duration", "load_settings",
]

ENV_PREFIX = "FLOWLORD_"
DEFAULTS_NOTE = "defaults < config file < FLOWLORD_* environment variables < flags"


class SettingsError(Exception):
    """Invalid settings: `problems` are `where: message` lines."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# --- Go durations ------------------------------------------------------------------------------

_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0,
          "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def go_duration(text: str) -> timedelta:
    """A Go duration (`time.ParseDuration`): `90s`, `1h30m`, `-4h`, `1.5h`, `0`. ValueError
    otherwise, with an example."""
    original = text
    if not isinstance(text, str):
        raise ValueError(f"give a duration as a string such as \"15m\", not {text!r}")
    text = text.strip()
    sign = 1
    if text[:1] in "+-" and text:
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return timedelta(0)
    if not text:
        raise ValueError(f"{original!r} is not a duration: write a number and a unit such as \"15m\"")
    position, seconds = 0, 0.0
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            rest = text[position:]
            hint = (" (Go durations have no day unit: write 24h for a day)"
                    if re.match(r"\d+(\.\d*)?[dwy]", rest) else "")
            raise ValueError(f"{original!r} is not a Go duration such as \"90s\", \"15m\" or "
                             f"\"1h30m\"{hint}")
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    return timedelta(seconds=sign * seconds)


def _duration(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or isinstance(value, (int, float)):
        raise ValueError(f"give a duration as a string such as \"15m\", not the number {value!r}")
    return go_duration(value)


def _show(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


# --- the models ------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class SlackSettings(_Model):
    """Go's [slack] (for alert notifications)."""

    url: str = ""
    prefix: str = ""
    channel: str = ""
    title: str = ""
    min_frequency: timedelta = timedelta(minutes=5)
    max_frequency: timedelta = timedelta(0)

    @field_validator("min_frequency", "max_frequency", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return _duration(value)

    @model_validator(mode="after")
    def _frequencies(self) -> SlackSettings:
        if self.min_frequency < timedelta(0) or self.max_frequency < timedelta(0):
            raise ValueError("min_frequency and max_frequency cannot be negative")
        if self.min_frequency == timedelta(0):  # Go: 5m when 0
            self.min_frequency = timedelta(minutes=5)
        if self.max_frequency <= self.min_frequency:  # Go: 16 x min when not above it
            self.max_frequency = 16 * self.min_frequency
        return self


class StoreSettings(_Model):
    """Go's [sqlite] (the README's [cache])."""

    local_path: str = ""  # empty: DATA_DIR/flowlord.db
    backup_path: str = ""  # a path, s3:// or gs://: restored when the store is missing, backed up
    backup_interval: timedelta = timedelta(hours=1)
    task_ttl: timedelta = timedelta(hours=4)
    retention: timedelta = timedelta(hours=2160)

    @field_validator("task_ttl", "retention", "backup_interval", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return _duration(value)

    @field_validator("retention")
    @classmethod
    def _positive_retention(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"must be positive (it was {_show(value)}): with 0 the Go "
                             "flowlord deletes every record before today; the default is 2160h (90 days)")
        return value


class WebhookSettings(_Model):
    """A generic JSON webhook for alerts, for chat tools other than Slack."""

    url: str = ""


class ServeSettings(_Model):
    workflow: str = ""
    refresh: timedelta = timedelta(seconds=2)
    done_topic: str = "done"
    file_topic: str = "files"
    failed_topic: str = "retry-failed"
    host: str = "localhost"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    bus: str = ""
    nats_port: int = 4222
    data_dir: str = ".flowlord"
    timezone: str = "UTC"
    catch_up: Literal["latest", "all", "none"] = "latest"
    watch: str = ""
    token: str = ""
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    slack: SlackSettings = Field(default_factory=SlackSettings)
    sqlite: StoreSettings = Field(default_factory=StoreSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)

    _notes: list[str] = PrivateAttr(default_factory=list)

    @field_validator("refresh", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return _duration(value)

    @field_validator("refresh")
    @classmethod
    def _positive_refresh(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"must be a positive duration such as \"2s\" or \"15m\", not "
                             f"{_show(value)} (the Go flowlord panics at start with 0)")
        return value

    @field_validator("http_port", "nats_port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 0 <= value <= 65535:
            raise ValueError(f"{value} is not a port number (0 to 65535)")
        return value

    @field_validator("done_topic")
    @classmethod
    def _done(cls, value: str) -> str:
        if value.strip() in ("", "-"):
            raise ValueError("the done topic cannot be switched off")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: give an IANA name such as UTC or "
                             "Europe/Paris") from None
        return value

    @field_validator("bus")
    @classmethod
    def _bus(cls, value: str) -> str:
        value = value.strip()
        if value in ("", "stdio", "stdio://"):
            return value
        scheme = value.partition("://")[0] if "://" in value else ""
        if scheme not in ("nats", "tls", "file", "memory"):
            raise ValueError(f"bus {value!r} not supported: give nats://HOST:4222 (several "
                             "comma-separated for a cluster), file://DIR, stdio, memory://, or "
                             "nothing for the embedded NATS server")
        return value

    @model_validator(mode="after")
    def _together(self) -> ServeSettings:
        if self.watch and self.file_topic.strip() in ("", "-"):
            raise ValueError("watch needs a file_topic to publish to (it is switched off)")
        return self

    # --- derived ------------------------------------------------------------------------------

    @property
    def notes(self) -> list[str]:
        """Warnings for the log (options accepted and not used, values raised to a minimum)."""
        return list(self._notes)

    @property
    def store_path(self) -> str:
        return self.sqlite.local_path or os.path.join(self.data_dir, "flowlord.db")

    @property
    def nats_dir(self) -> str:
        return os.path.join(self.data_dir, "nats")

    @property
    def retention(self) -> timedelta:
        return self.sqlite.retention

    @property
    def files_enabled(self) -> bool:
        return self.file_topic.strip() not in ("", "-")


# --- names -------------------------------------------------------------------------------------
# canonical name -> the spellings accepted in a config file (compared in lower case)

TOP: dict[str, tuple[str, ...]] = {
    "workflow": ("workflow",),
    "refresh": ("refresh",),
    "done_topic": ("done_topic",),
    "file_topic": ("file_topic",),
    "failed_topic": ("failed_topic",),
    "host": ("host",),
    "http_host": ("http_host",),
    "http_port": ("http_port", "status_port"),
    "bus": ("bus",),
    "nats_port": ("nats_port",),
    "data_dir": ("data_dir",),
    "timezone": ("timezone",),
    "catch_up": ("catch_up",),
    "watch": ("watch",),
    "token": ("token",),
    "log_format": ("log_format",),
    "log_level": ("log_level",),
}
TABLES: dict[str, dict[str, tuple[str, ...]]] = {
    "slack": {
        "url": ("url",), "prefix": ("prefix",), "channel": ("channel",), "title": ("title",),
        "min_frequency": ("min_frequency", "minfrequency"),
        "max_frequency": ("max_frequency", "maxfrequency"),
    },
    "sqlite": {
        "local_path": ("local_path", "localpath"),
        "backup_path": ("backup_path", "backuppath"),
        "backup_interval": ("backup_interval", "backupinterval"),
        "task_ttl": ("task_ttl", "task-ttl", "taskttl"),
        "retention": ("retention",),
    },
    "webhook": {"url": ("url",)},
}
TABLE_NAMES = {"slack": "slack", "sqlite": "sqlite", "cache": "sqlite", "webhook": "webhook"}
IGNORED_TABLES = {
    "file": "[file] (the Go flowlord's S3/GCS/minio options) is not used by flowlord: ignored",
}
# Go's `[bus]` picks nsq, pubsub or stdio, which flowlord does not speak: never ignore it quietly.
GO_BUS_TABLE = ("the Go flowlord's [bus] table (nsq, pubsub, stdio options) is not supported: "
                "give bus = \"nats://HOST:4222\", or leave bus out for the embedded NATS server")


def _lookup(spellings: Mapping[str, tuple[str, ...]], key: str) -> str | None:
    lowered = key.lower()
    for name, accepted in spellings.items():
        if lowered in accepted:
            return name
    return None


def _suggest(key: str, candidates: Iterable[str]) -> str:
    from flowlord.compiler.suggest import did_you_mean

    hint = did_you_mean(key, list(candidates))
    return f"; {hint}" if hint else ""


# --- sources -------------------------------------------------------------------------------------

Origins = dict[tuple[str, ...], str]


def _line_index(path: str, text: str) -> dict[tuple[str, ...], int]:
    """(table, key) and (key,) in lower case -> the line they are written on."""
    try:
        from flowlord.compiler.toml_positions import scan

        layout = scan(path, text)
    except Exception:  # positions are a nicety: never fail over them
        return {}

    def line(offset: int) -> int:
        return text.count("\n", 0, offset) + 1

    lines: dict[tuple[str, ...], int] = {}
    for entry in layout.root:
        lines.setdefault(tuple(part.lower() for part in entry.dotted), line(entry.key_start))
    for table in layout.tables:
        name = tuple(part.lower() for part in table.name)
        lines.setdefault(name, line(table.name_start))
        for entry in table.entries:
            lines.setdefault(name + tuple(part.lower() for part in entry.dotted), line(entry.key_start))
    return lines


def _read_config(path: str, values: dict, origins: Origins, problems: list[str],
                 notes: list[str]) -> None:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        reason = error.strerror or str(error)
        problems.append(f"{path}: cannot read the config file: {reason[:1].lower()}{reason[1:]}")
        return
    try:
        text = data.decode("utf-8")
        document = tomllib.loads(text)
    except UnicodeDecodeError as error:
        problems.append(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})")
        return
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        found = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        if found:
            message = message[: found.start()]
            problems.append(f"{path}:{found.group(1)}:{found.group(2)}: invalid TOML: {message}")
        else:
            problems.append(f"{path}: invalid TOML: {message}")
        return
    lines = _line_index(path, text)

    def where(*key: str) -> str:
        number = lines.get(tuple(k.lower() for k in key))
        return f"{path}:{number}" if number else path

    seen: dict[tuple[str, ...], str] = {}  # canonical -> the spelling that set it

    def put(canonical: tuple[str, ...], spelled: tuple[str, ...], value: Any) -> None:
        if canonical in seen:
            first = seen[canonical]
            problems.append(f"{where(*spelled)}: `{'.'.join(canonical)}` is set twice (first as "
                            f"`{'.'.join(first)}` at {where(*first)})")
            return
        seen[canonical] = spelled
        target = values
        for part in canonical[:-1]:
            target = target.setdefault(part, {})
        target[canonical[-1]] = value
        origins[canonical] = where(*spelled)

    for key, value in document.items():
        lowered = key.lower()
        if isinstance(value, dict):
            if lowered == "bus":
                problems.append(f"{where(key)}: {GO_BUS_TABLE}")
                continue
            if lowered in IGNORED_TABLES:
                notes.append(f"{where(key)}: {IGNORED_TABLES[lowered]}")
                continue
            table = TABLE_NAMES.get(lowered)
            if table is None:
                if _lookup(TOP, key) is not None:
                    problems.append(f"{where(key)}: `{key}` is a single value, not a table")
                else:
                    problems.append(f"{where(key)}: unknown table [{key}]"
                                    + _suggest(key, list(TABLE_NAMES)))
                continue
            fields = TABLES[table]
            for inner, inner_value in value.items():
                name = _lookup(fields, inner)
                if name is None:
                    accepted = [s for spellings in fields.values() for s in spellings]
                    problems.append(f"{where(key, inner)}: unknown key `{inner}` in [{key}]"
                                    + _suggest(inner, accepted))
                    continue
                put((table, name), (key, inner), inner_value)
            continue
        if lowered in TABLE_NAMES:
            problems.append(f"{where(key)}: `{key}` is a table: write it as [{lowered}] with its keys")
            continue
        name = _lookup(TOP, key)
        if name is None:
            accepted = [s for spellings in TOP.values() for s in spellings]
            problems.append(f"{where(key)}: unknown key `{key}`" + _suggest(key, accepted))
            continue
        put((name,), (key,), value)


def _read_env(env: Mapping[str, str], values: dict, origins: Origins) -> None:
    names: dict[str, tuple[str, ...]] = {}
    for name in TOP:
        names[ENV_PREFIX + name.upper()] = (name,)
    names[ENV_PREFIX + "STATUS_PORT"] = ("http_port",)
    for table, fields in TABLES.items():
        for name in fields:
            names[f"{ENV_PREFIX}{table.upper()}_{name.upper()}"] = (table, name)
            if table == "sqlite":
                names[f"{ENV_PREFIX}CACHE_{name.upper()}"] = (table, name)
    for variable, key in names.items():
        if variable in env:
            target = values
            for part in key[:-1]:
                target = target.setdefault(part, {})
            target[key[-1]] = env[variable]
            origins[key] = variable


def _merge(base: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _message(error: dict) -> str:
    text = error.get("msg", "")
    for prefix in ("Value error, ", "Assertion failed, "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    kind = error.get("type")
    if kind in ("int_parsing", "int_type", "int_from_float"):
        text = f"{error.get('input')!r} is not a whole number"
    elif kind == "string_type":
        text = f"{error.get('input')!r} is not text: write it in quotes"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        text = f"{error.get('input')!r} is not one of {expected}"
    return text


def load_settings(config: str | None = None, env: Mapping[str, str] | None = None,
                  flags: Mapping[str, Any] | None = None, *,
                  flag_names: Mapping[str, str] | None = None) -> ServeSettings:
    """The settings from their four sources (see the module docstring). `config` defaults to
    $FLOWLORD_CONFIG; `flags` maps canonical names (`http_port`, `data_dir`…) to values, None
    meaning not given; `flag_names` says how each flag is spelled in messages."""
    env = {} if env is None else env
    problems: list[str] = []
    notes: list[str] = []
    origins: Origins = {}
    values: dict = {}

    config = config or env.get(ENV_PREFIX + "CONFIG") or None
    if config:
        _read_config(config, values, origins, problems, notes)
    env_values: dict = {}
    _read_env(env, env_values, origins)
    _merge(values, env_values)
    flag_values: dict = {}
    for name, value in (flags or {}).items():
        if value is None:
            continue
        key = tuple(name.split("."))
        target = flag_values
        for part in key[:-1]:
            target = target.setdefault(part, {})
        target[key[-1]] = value
        origins[key] = (flag_names or {}).get(name, "--" + name.replace("_", "-"))
    _merge(values, flag_values)

    try:
        settings = ServeSettings.model_validate(values)
    except ValidationError as invalid:
        for error in invalid.errors():
            loc = tuple(str(part) for part in error.get("loc", ()))
            origin = None
            for length in range(len(loc), 0, -1):
                origin = origins.get(loc[:length])
                if origin:
                    break
            if loc:
                problems.append(f"{origin or 'settings'}: {'.'.join(loc)}: {_message(error)}")
            else:
                problems.append(f"settings: {_message(error)}")
        raise SettingsError(problems) from None
    if problems:
        raise SettingsError(problems)

    if settings.sqlite.task_ttl < timedelta(hours=1):  # Go forces it up to 1h
        where = origins.get(("sqlite", "task_ttl"), "sqlite.task_ttl")
        notes.append(f"{where}: task-ttl {_show(settings.sqlite.task_ttl)} raised to 1h, the minimum")
        settings.sqlite.task_ttl = timedelta(hours=1)
    settings._notes = notes
    return settings
