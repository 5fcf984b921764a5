"""The dashboard and HTTP API: `make_app(WebContext) -> bottle.Bottle`, a new app per call.

Pages (each with a JSON twin: `<path>.json`, or `Accept: application/json`):
`/web/task` (and `/web/task/<id>`, one chain), `/web/workflow`, `/web/alert`, `/web/files`,
`/web/backload`, `/web/about` (also `/`), `/codes/<code>`. API: `GET /status`, `GET /info`,
`POST /refresh` (GET is a 405), `POST /backload`, `GET /task/<id>`, `GET /recap`,
`GET /workflow/…`, `GET /metrics`. Static files under `/static/`.

Security: state changes (backload, refresh) only on POST, with a JSON body or the form's CSRF
token; bound off loopback they also need the token (`Authorization: Bearer …`), and with no
token configured they are refused; a warning at start says what is exposed. Templates escape
everything (Jinja2 autoescape); a bad query parameter is a 400 with its reason; an unexpected
error is a 500 page without a traceback (it goes to the log).
"""

from __future__ import annotations

from typing import Any

import bottle

from . import api, pages, workflows
from .context import Diagram, WebContext
from .core import HERE, Web, install_errors, log
from .metrics import Metrics

__all__ = ["Diagram", "WebContext", "make_app"]


def make_app(ctx: WebContext) -> bottle.Bottle:
    app = bottle.Bottle(catchall=True)
    app.config["json.enable"] = False
    web = Web(ctx, app)
    install_errors(web)
    pages.install(web)
    workflows.install(web)
    api.install(web)

    @web.page("/web/backload", "backload.html")
    def backload_form() -> dict[str, Any]:
        plan = ctx.current_plan()
        phases = [{"workflow": w.key, "id": p.id, "topic": p.topic, "job": p.job or "",
                   "template": p.template.text, "trigger": p.trigger,
                   "rule": "&".join(f"{k}={v}" for k, v in p.rule),
                   "meta_keys": sorted({part.key for part in p.template.parts
                                        if getattr(part, "kind", "") == "meta"}),
                   "meta_file": p.batch.meta_file.path if p.batch and p.batch.meta_file else "",
                   "meta": {r.key: list(r.values) for r in p.batch.meta.rows}
                   if p.batch and p.batch.meta else {}}
                  for w in (plan.workflows if plan else ()) for p in w.phases]
        return {"phases": phases, "limit": ctx.backload_limit,
                "today": ctx.current_time().strftime("%Y-%m-%d"),
                "can_execute": ctx.engine is not None}

    metrics = Metrics(ctx)
    if ctx.engine is not None:
        ctx.engine.add_listener(metrics.observe)
    app.route("/metrics", "GET", metrics.text)

    @app.get("/static/<name:re:[A-Za-z0-9_.-]+>")
    def static(name: str) -> Any:
        response = bottle.static_file(name, root=str(HERE / "static"))
        if isinstance(response, bottle.HTTPError):
            raise response
        response.set_header("Cache-Control", "max-age=3600")
        return response

    @app.hook("after_request")
    def headers() -> None:
        response = bottle.response
        response.set_header("X-Content-Type-Options", "nosniff")
        response.set_header("X-Frame-Options", "DENY")
        response.set_header("Referrer-Policy", "same-origin")
        response.set_header("Content-Security-Policy",
                            "default-src 'self'; script-src 'self'; style-src 'self'; "
                            "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                            "frame-ancestors 'none'; form-action 'self'")

    if web.auth_required:
        exposed = "pages, task history and workflow files are readable by anyone who can reach it"
        if ctx.token:
            log.warning("the dashboard listens on %s:%s, beyond this machine: %s; backload and "
                        "refresh need the token", ctx.host, ctx.port, exposed)
        else:
            log.warning("the dashboard listens on %s:%s, beyond this machine: %s; backload and "
                        "refresh are disabled (no token configured)", ctx.host, ctx.port, exposed)
    return app
