"""The console's pages and actions (aiohttp handlers), rendered server-side with Jinja2.

Every page needs a signed-in session (else a redirect to the sign-in form); every
state-changing request is a POST carrying the session's CSRF token. Destructive actions go
through a confirmation page first, and each one performed is logged with who (the name given
at sign-in), from where, and what (``console_action``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from relay import deadletters
from relay.console import actions, fleet, pipeline
from relay.console.auth import COOKIE, SESSION_TTL_S, Session
from relay.logs import get_logger
from relay.redis.keys import Keys

if TYPE_CHECKING:
    from relay.console.state import Console

log = get_logger("console")

LETTERS_PER_PAGE = 50
LOGGED_ENTRIES = 50
"""At most this many entry ids are written into one action's log line (then ``...``)."""


def render(
    console: Console, name: str, request: web.Request, session: Session | None, **context: Any
) -> web.Response:
    """One page, with the session's CSRF token."""
    html = console.env.get_template(name).render(
        session=session,
        csrf=console.auth.csrf(session) if session else "",
        path=request.path,
        **context,
    )
    return web.Response(text=html, content_type="text/html")


def _redirect(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location)


async def login_form(console: Console, request: web.Request) -> web.Response:
    """The sign-in form."""
    return render(console, "login.html", request, None, failed=False)


async def login(console: Console, request: web.Request) -> web.StreamResponse:
    """Check the token; on success set the session cookie (HttpOnly, SameSite=Strict)."""
    form = await request.post()
    if not console.auth.token_ok(str(form.get("token", ""))):
        log.warning("console_login_failed", remote=request.remote)
        response = render(console, "login.html", request, None, failed=True)
        response.set_status(401)
        return response
    cookie = console.auth.issue(str(form.get("who", "")))
    session = console.auth.session(cookie)
    assert session is not None
    log.info("console_login", who=session.who, remote=request.remote)
    response = _redirect("/console/fleet")
    response.set_cookie(
        COOKIE,
        cookie,
        path="/console",
        max_age=int(SESSION_TTL_S),
        httponly=True,
        samesite="Strict",
        # Behind a TLS-terminating proxy (docs/console.md); a forged header only makes it stricter.
        secure=request.secure or request.headers.get("X-Forwarded-Proto") == "https",
    )
    raise response


async def logout(console: Console, request: web.Request, session: Session) -> web.StreamResponse:
    """Forget the cookie in this browser."""
    log.info("console_logout", who=session.who, remote=request.remote)
    response = _redirect("/console/login")
    response.del_cookie(COOKIE, path="/console")
    raise response


async def fleet_page(console: Console, request: web.Request, session: Session) -> web.Response:
    """The fleet table: counts by phase, filter, sort, one page."""
    q = request.query
    sort = q.get("sort", "id") if q.get("sort") in fleet.SORT_KEYS else "id"
    keys = Keys(console.cfg.redis.prefix, console.cfg.redis.partitions)
    rows = await fleet.read_fleet(console.redis, keys, console.configured, time.time())
    selected = fleet.select(
        rows,
        query=q.get("q", ""),
        phase=q.get("phase", ""),
        sort=sort,
        descending=q.get("order") == "desc",
        page=_int(q.get("page"), 1),
    )
    params = {"q": q.get("q", ""), "phase": q.get("phase", ""), "sort": sort}
    return render(
        console,
        "fleet.html",
        request,
        session,
        fleet=selected,
        params=params,
        order=q.get("order", "asc"),
        link=lambda **kw: "/console/fleet?" + urlencode({**params, **kw}),
    )


async def pipeline_page(console: Console, request: web.Request, session: Session) -> web.Response:
    """Streams, translator, Redis health."""
    redis, cfg = console.redis, console.cfg
    return render(
        console,
        "pipeline.html",
        request,
        session,
        streams=await pipeline.streams(redis, cfg, console.meter),
        group=await pipeline.translator_group(redis, cfg),
        health=await pipeline.redis_health(redis),
    )


async def webhooks_page(console: Console, request: web.Request, session: Session) -> web.Response:
    """Every webhook endpoint with its state and a re-enable button."""
    rows = await pipeline.endpoints(console.redis, console.cfg)
    return render(
        console, "webhooks.html", request, session, endpoints=rows, done=request.query.get("done")
    )


async def enable_endpoint(
    console: Console, request: web.Request, session: Session
) -> web.StreamResponse:
    """Re-enable an endpoint (POST, CSRF-checked by the middleware)."""
    form = await request.post()
    name = str(form.get("endpoint", ""))
    if name not in {e.name for e in console.cfg.webhooks.endpoints}:
        raise web.HTTPBadRequest(text="unknown endpoint")
    was = await actions.enable(console.redis, console.cfg, name)
    _audit(
        request, session, "enable", source=f"{actions.WEBHOOK}{name}", entries=None, count=int(was)
    )
    raise _redirect("/console/webhooks?" + urlencode({"done": f"{name} enabled"}))


def _source(console: Console, raw: str | None) -> str:
    source = raw or actions.RELAY
    if source not in actions.sources(console.cfg):
        raise web.HTTPBadRequest(text="unknown dead-letter source")
    return source


async def letters_page(console: Console, request: web.Request, session: Session) -> web.Response:
    """One page of a source's dead letters, oldest first, with replay and purge."""
    source = _source(console, request.query.get("source"))
    after = request.query.get("after", "")
    letters = await actions.page(
        console.redis, console.cfg, source, after=after, limit=LETTERS_PER_PAGE
    )
    totals = {
        s: await actions.count(console.redis, console.cfg, s) for s in actions.sources(console.cfg)
    }
    return render(
        console,
        "deadletters.html",
        request,
        session,
        source=source,
        totals=totals,
        letters=letters,
        after=after,
        more=len(letters) == LETTERS_PER_PAGE,
        done=request.query.get("done"),
    )


def _requested(form: Any) -> tuple[str, list[str] | None]:
    """(action, entries) of a dead-letter form; ``None`` entries means every one."""
    row = str(form.get("row", ""))
    if row:
        action, _, entry = row.partition(":")
        return action, [entry]
    action = str(form.get("action", ""))
    if action.endswith("-all"):
        return action.removesuffix("-all"), None
    return action, [str(e) for e in form.getall("entries", [])]


async def confirm_letters(console: Console, request: web.Request, session: Session) -> web.Response:
    """The confirmation page of a replay or purge: what exactly will happen."""
    form = await request.post()
    source = _source(console, str(form.get("source", "")))
    action, entries = _requested(form)
    if action not in ("replay", "purge") or entries == []:
        raise _redirect("/console/deadletters?" + urlencode({"source": source}))
    total = await actions.count(console.redis, console.cfg, source)
    return render(
        console,
        "confirm.html",
        request,
        session,
        source=source,
        action=action,
        entries=entries,
        count=total if entries is None else len(entries),
    )


async def apply_letters(
    console: Console, request: web.Request, session: Session
) -> web.StreamResponse:
    """Perform a confirmed replay or purge, log it, and go back to the list."""
    form = await request.post()
    source = _source(console, str(form.get("source", "")))
    action = str(form.get("action", ""))
    entries = None if form.get("scope") == "all" else [str(e) for e in form.getall("entries", [])]
    if action == "replay":
        try:
            done = await actions.replay(console.redis, console.cfg, source, entries)
        except (
            deadletters.PartialDeadLetterError
        ) as exc:  # a partial dead letter: the text says to run a sync
            raise web.HTTPBadRequest(text=str(exc)) from exc
    elif action == "purge":
        done = await actions.purge(console.redis, console.cfg, source, entries)
    else:
        raise web.HTTPBadRequest(text="unknown action")
    _audit(request, session, action, source=source, entries=entries, count=done)
    verb = "replayed" if action == "replay" else "purged"
    query = urlencode({"source": source, "done": f"{done} dead letter(s) {verb}"})
    raise _redirect(f"/console/deadletters?{query}")


def _audit(
    request: web.Request,
    session: Session,
    action: str,
    *,
    source: str,
    entries: list[str] | None,
    count: int,
) -> None:
    """The log line of an operator action: who, from where, what, how many."""
    shown: list[str] | str = "all"
    if entries is not None:
        shown = entries[:LOGGED_ENTRIES] + (["..."] if len(entries) > LOGGED_ENTRIES else [])
    log.info(
        "console_action",
        who=session.who,
        remote=request.remote,
        action=action,
        source=source,
        entries=shown,
        count=count,
    )


def _int(raw: str | None, default: int) -> int:
    try:
        return int(raw) if raw else default
    except ValueError:
        return default
