"""The v2 Data endpoints (``/v2.x/students`` ... and their relations) from the read model.

Collections page with ``ZRANGEBYLEX`` over ``<base>:ids:<rt>`` then one ``HMGET``. Relations come
from three places, each bounded by the parent, never the district:

- reverse indexes kept by the writers (a school's students, teachers and sections; a student's
  contacts and sections; a teacher's sections; a course's or term's sections), paged in Redis;
- the parent object's own fields (a student's ``schools``, a section's ``students``), and
- a derivation through sections (a student's teachers, a teacher's students),

the last two paged in memory after dropping ids the read model does not hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from relay.v2api.paging import (
    LAST,
    Page,
    error_response,
    item,
    joined_response,
    links,
    list_response,
    one_response,
    parse_page,
    select_sorted,
    self_link,
)

if TYPE_CHECKING:
    from aiohttp import web

    from relay.redis.keys import ReadModelKeys
    from relay.v2api.context import V2Context

PATHS: dict[str, str] = {
    "students": "students",
    "teachers": "teachers",
    "contacts": "contacts",
    "district_admins": "districtadmins",
    "school_admins": "schooladmins",
    "schools": "schools",
    "sections": "sections",
    "districts": "districts",
    "courses": "courses",
    "terms": "terms",
}
"""URL collection name → v2 record type (the read model's key part)."""
URL_OF = {record_type: path for path, record_type in PATHS.items()}


@dataclass(frozen=True, slots=True)
class Relation:
    """How ``/<parent>/{id}/<name>`` is answered.

    ``kind``: ``rel`` (reverse index of ``member`` ids), ``field`` (the parent's ``fields``),
    ``sections`` (the ``fields`` of the parent's sections), ``district``.
    """

    kind: str
    member: str
    fields: tuple[str, ...] = ()
    single: bool = False


_DISTRICT = Relation("district", "districts", single=True)


def _one(field: str, member: str) -> Relation:
    return Relation("field", member, (field,), single=True)


RELATIONS: dict[str, dict[str, Relation]] = {
    "students": {
        "contacts": Relation("rel", "contacts"),
        "schools": Relation("field", "schools", ("schools",)),
        "school": _one("school", "schools"),
        "sections": Relation("rel", "sections"),
        "teachers": Relation("sections", "teachers", ("teacher", "teachers")),
        "district": _DISTRICT,
    },
    "teachers": {
        "students": Relation("sections", "students", ("students",)),
        "sections": Relation("rel", "sections"),
        "schools": Relation("field", "schools", ("schools",)),
        "school": _one("school", "schools"),
        "district": _DISTRICT,
    },
    "contacts": {"students": Relation("field", "students", ("students",)), "district": _DISTRICT},
    "districtadmins": {"district": _DISTRICT},
    "schooladmins": {"schools": Relation("field", "schools", ("schools",)), "district": _DISTRICT},
    "schools": {
        "students": Relation("rel", "students"),
        "teachers": Relation("rel", "teachers"),
        "sections": Relation("rel", "sections"),
        "district": _DISTRICT,
    },
    "sections": {
        "students": Relation("field", "students", ("students",)),
        "teachers": Relation("field", "teachers", ("teacher", "teachers")),
        "teacher": _one("teacher", "teachers"),
        "course": _one("course", "courses"),
        "term": _one("term_id", "terms"),
        "school": _one("school", "schools"),
        "district": _DISTRICT,
    },
    "courses": {"sections": Relation("rel", "sections"), "district": _DISTRICT},
    "terms": {"sections": Relation("rel", "sections"), "district": _DISTRICT},
}

_refs_decoder = msgspec.json.Decoder(dict[str, Any])


def _lex(page: Page) -> tuple[str, str]:
    lo = "-" if page.starting_after is None else "(" + page.starting_after
    hi = "+"
    if page.ending_before is not None and page.ending_before != LAST:
        hi = "(" + page.ending_before
    return lo, hi


async def _objects(ctx: V2Context, key: str, ids: list[str]) -> list[tuple[str, bytes]]:
    if not ids:
        return []
    values: Any = await ctx.redis.hmget(key, ids)
    return [(i, v) for i, v in zip(ids, values, strict=True) if v is not None]


def _page_response(
    request: web.Request, record_type: str, found: list[tuple[str, bytes]]
) -> web.Response:
    prefix = f"/{_version(request)}/{URL_OF[record_type]}/"
    items = [item(body, prefix + oid) for oid, body in found]
    first, last = (found[0][0], found[-1][0]) if found else (None, None)
    return list_response(items, links(request, first, last))


def _version(request: web.Request) -> str:
    """``v2.0`` or ``v2.1``: item uris name the version they were asked under."""
    return request.path.split("/")[1]


def _record_type(request: web.Request) -> str:
    return PATHS[request.match_info["collection"]]


async def _indexed_page(
    request: web.Request, ctx: V2Context, page: Page, *, ids_key: str, objects_key: str, member: str
) -> web.Response:
    """A page of ``member`` objects whose ids are a sorted set, assembled in Redis."""
    lo, hi = _lex(page)
    joined = await ctx.pages.objects(
        ids_key=ids_key,
        objects_key=objects_key,
        lo=lo,
        hi=hi,
        limit=page.limit,
        backward=page.backward,
        uri_prefix=f"/{_version(request)}/{URL_OF[member]}/",
    )
    return joined_response(joined.items, links(request, joined.first, joined.last))


async def list_objects(request: web.Request, ctx: V2Context, rk: ReadModelKeys) -> web.Response:
    """``GET /v2.x/<collection>``: one page in v2 id order."""
    page = parse_page(request, ctx.default_limit)
    rt = _record_type(request)
    return await _indexed_page(
        request, ctx, page, ids_key=rk.ids(rt), objects_key=rk.objects(rt), member=rt
    )


async def get_object(request: web.Request, ctx: V2Context, rk: ReadModelKeys) -> web.Response:
    """``GET /v2.x/<collection>/{id}``: the object, or 404."""
    record_type = _record_type(request)
    object_id = request.match_info["id"]
    body: Any = await ctx.redis.hget(rk.objects(record_type), object_id)
    if body is None:
        return error_response(404, f"{URL_OF[record_type]} {object_id} not found")
    return one_response(body, self_link(request))


def _field_ids(obj: dict[str, Any], fields: tuple[str, ...]) -> set[str]:
    out: set[str] = set()
    for name in fields:
        value = obj.get(name)
        if isinstance(value, str) and value:
            out.add(value)
        elif isinstance(value, list):
            out.update(x for x in value if isinstance(x, str) and x)
    return out


async def _through_sections(
    ctx: V2Context, rk: ReadModelKeys, parent: str, object_id: str, fields: tuple[str, ...]
) -> set[str]:
    """The union of ``fields`` over the parent's sections (a student's teachers ...)."""
    key = rk.rel(parent, object_id, "sections")
    members: Any = await ctx.redis.zrange(key, 0, -1)
    section_ids = [x.decode() for x in members]
    out: set[str] = set()
    for _, body in await _objects(ctx, rk.objects("sections"), section_ids):
        out |= _field_ids(_refs_decoder.decode(body), fields)
    return out


async def related(request: web.Request, ctx: V2Context, rk: ReadModelKeys) -> web.Response:
    """``GET /v2.x/<collection>/{id}/<relation>``: a page, or one object for singular ones."""
    parent = _record_type(request)
    relation = RELATIONS.get(parent, {}).get(request.match_info["relation"])
    object_id = request.match_info["id"]
    if relation is None:
        return error_response(404, f"no such endpoint: {request.path}")
    body: Any = await ctx.redis.hget(rk.objects(parent), object_id)
    if body is None:
        return error_response(404, f"{URL_OF[parent]} {object_id} not found")
    page = parse_page(request, ctx.default_limit)
    if relation.kind == "rel":
        key = rk.rel(parent, object_id, relation.member)
        member = relation.member
        return await _indexed_page(
            request, ctx, page, ids_key=key, objects_key=rk.objects(member), member=member
        )
    if relation.kind == "district":
        candidates = {rk.district}
    elif relation.kind == "field":
        obj = _refs_decoder.decode(body)
        candidates = _field_ids(obj, relation.fields[:1] if relation.single else relation.fields)
    else:
        candidates = await _through_sections(ctx, rk, parent, object_id, relation.fields)
    present = await _objects(ctx, rk.objects(relation.member), sorted(candidates))
    if relation.single:
        if not present:
            return error_response(404, f"{URL_OF[parent]} {object_id} has no {relation.member}")
        return one_response(present[0][1], self_link(request))
    bodies = dict(present)
    chosen = select_sorted([oid for oid, _ in present], page)
    return _page_response(request, relation.member, [(oid, bodies[oid]) for oid in chosen])
