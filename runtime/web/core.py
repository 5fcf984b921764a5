"""The dashboard's plumbing: HTML or JSON twins, query parameters that give 400s, the guard on
state changes (POST, a JSON body or the form's CSRF token, the token off loopback), and the
error pages."""

from __future__ import annotations

import functools
import hmac
import ipaddress
import json
import logging
import secrets
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import bottle
import jinja2

from .context import WebContext

log = logging.getLogger("flowlord.web")

HERE = Path(__file__).parent
PER_PAGE = 100
RESULTS = ("complete", "error", "alert", "warn", "running")


class BadRequest(bottle.HTTPError):
    def __init__(self, message: str) -> None:
        super().__init__(400, message)


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def to_json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, default=_json_default, ensure_ascii=False, indent=indent)


def wants_json() -> bool:
    """A `.json` route, or an Accept header that prefers JSON to HTML."""
    if bottle.request.path.endswith(".json"):
        return True
    accept = bottle.request.headers.get("Accept", "")
    best = {}
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best[media.strip().lower()] = q
    return best.get("application/json", 0) > max(best.get("text/html", 0), best.get("*/*", 0) * 0.5)


class Web:
    """One app's state: its context, templates, CSRF secret and routes' helpers."""

    def __init__(self, ctx: WebContext, app: bottle.Bottle) -> None:
        self.ctx = ctx
        self.app = app
        self.csrf = secrets.token_urlsafe(32)
        self.auth_required = not is_loopback(ctx.host)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(HERE / "templates")),
            autoescape=True, trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(csrf_token=self.csrf, version=ctx.version,
                                auth_required=self.auth_required, url=url,
                                task_href=task_href)
        self.env.filters["tojson_compact"] = lambda v: jinja2.filters.htmlsafe_json_dumps(
            v, dumps=to_json)

    # --- routes -----------------------------------------------------------------------------

    def page(self, path: str, template: str, name: str | None = None) -> Callable:
        """A GET page at `path` and its JSON twin at `path.json`: the handler returns a dict."""

        def decorate(handler: Callable[..., dict]) -> Callable:
            @functools.wraps(handler)
            def route(**kwargs: Any) -> str:
                data = handler(**kwargs)
                if wants_json():
                    bottle.response.content_type = "application/json"
                    return to_json(data)
                return self.render(template, data)

            if path != "/":  # the twin first: `<id>` would match `x.json` too
                self.app.route(path.rstrip("/") + ".json", "GET", route)
            self.app.route(path, "GET", route, name=name)
            return route

        return decorate

    def render(self, template: str, data: dict) -> str:
        bottle.response.content_type = "text/html; charset=utf-8"
        values = {"view": template.removesuffix(".html"), "path": bottle.request.path,
                  "query": dict(bottle.request.query.decode().allitems()), "data": data}
        return self.env.get_template(template).render({**values, **data})

    # --- parameters -------------------------------------------------------------------------

    @staticmethod
    def param(name: str, default: str = "", *, max_len: int = 200) -> str:
        value = bottle.request.query.getunicode(name)
        if value is None:
            raw = bottle.request.query.get(name)
            if raw is not None:
                raise BadRequest(f"{name}: not valid UTF-8")
            return default
        if len(value) > max_len:
            raise BadRequest(f"{name}: longer than {max_len} characters")
        if any(ord(c) < 32 for c in value):
            raise BadRequest(f"{name}: control characters are not allowed")
        return value.strip()

    def day(self) -> date:
        text = self.param("date")
        if not text:
            return self.ctx.current_time().date()
        try:
            return date.fromisoformat(text) if len(text) == 10 else _bad_date(text)
        except ValueError:
            return _bad_date(text)

    def page_number(self) -> int:
        text = self.param("page", "1")
        if not text.isdigit() or not 1 <= int(text) <= 1_000_000:
            raise BadRequest(f"page: {text!r} is not a page number (1, 2, …)")
        return int(text)

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        value = self.param(name)
        if value and value not in choices:
            raise BadRequest(f"{name}: {value!r} is not one of {', '.join(choices)}")
        return value

    # --- state changes ----------------------------------------------------------------------

    def guard(self) -> None:
        """Before a state change: the token off loopback, and a JSON body or the CSRF token."""
        request = bottle.request
        if request.method != "POST":
            raise bottle.HTTPError(405, "state changes need POST", Allow="POST")
        if self.auth_required:
            if not self.ctx.token:
                raise bottle.HTTPError(
                    403, f"state changes are disabled: flowlord listens on {self.ctx.host}, "
                         "not on loopback, and no token is configured")
            given = request.headers.get("Authorization", "")
            token = given[7:].strip() if given[:7].lower() == "bearer " else ""
            if not token and is_form():
                token = request.forms.getunicode("token") or ""
            if not hmac.compare_digest(token.encode(), self.ctx.token.encode()):
                raise bottle.HTTPError(401, "a valid token is needed: send the header "
                                            "Authorization: Bearer <token>",
                                       **{"WWW-Authenticate": "Bearer"})
        if request.content_type.split(";")[0].strip().lower() == "application/json":
            return
        if is_form():
            given = request.forms.getunicode("csrf_token") or ""
            if hmac.compare_digest(given.encode(), self.csrf.encode()):
                return
            raise bottle.HTTPError(403, "the form's CSRF token is missing or wrong: reload the page")
        raise bottle.HTTPError(415, "send a JSON body (Content-Type: application/json) or the "
                                    "dashboard's form")

    def json_body(self) -> Any:
        if bottle.request.content_type.split(";")[0].strip().lower() != "application/json":
            return {}
        raw = bottle.request.body.read((1 << 20) + 1)
        if len(raw) > 1 << 20:
            raise BadRequest("the body is larger than 1 MiB")
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as error:
            raise BadRequest(f"the body is not valid JSON: {error}") from None


def task_href(task_id: str) -> str | None:
    """The page of a task's chain."""
    return "/web/task/" + quote(task_id, safe="") if task_id else None


def url(path: str, **params: Any) -> str:
    """`path?query` with the parameters that have a value."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return f"{path}?{query}" if query else path


def is_form() -> bool:
    return bottle.request.content_type.split(";")[0].strip().lower() in (
        "application/x-www-form-urlencoded", "multipart/form-data")


def _bad_date(text: str) -> date:
    raise BadRequest(f"date: {text!r} is not a day: write YYYY-MM-DD")


def install_errors(web: Web) -> None:
    """Error pages: JSON for JSON requests and API routes, HTML otherwise; never a traceback."""

    def contain(callback: Callable) -> Callable:
        """An unexpected exception: logged here, a bare 500 for bottle (which would otherwise
        write the traceback to the server's error stream)."""

        @functools.wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return callback(*args, **kwargs)
            except bottle.HTTPResponse:
                raise
            except Exception as error:
                log.exception("%s %s failed", bottle.request.method, bottle.request.path)
                raise bottle.HTTPError(500, "internal error") from error

        return wrapper

    web.app.install(contain)

    def handler(error: bottle.HTTPError) -> str:
        status = error.status_code
        message = error.body if isinstance(error.body, str) and status < 500 else \
            "internal error: the details are in flowlord's log"
        if status == 404 and message.startswith("Not found: "):  # bottle's own
            message = f"no page at {bottle.request.path}"
        if status == 405 and message.startswith("Method not allowed"):
            message = f"{bottle.request.method} is not allowed on {bottle.request.path}"
        api = bottle.request.path in ("/backload", "/refresh", "/info", "/recap") or \
            bottle.request.path.startswith(("/task/", "/workflow", "/metrics"))
        if wants_json() or api:
            bottle.response.content_type = "application/json"
            return to_json({"error": message, "status": status})
        bottle.response.content_type = "text/html; charset=utf-8"
        try:
            return web.env.get_template("error.html").render(
                status=status, message=message, view="error", path=bottle.request.path, query={},
                data={})
        except Exception:  # the error page itself must not fail
            log.exception("rendering the error page")
            return f"{status}"

    for status in (400, 401, 403, 404, 405, 409, 413, 415, 500, 503):
        web.app.error(status)(handler)
