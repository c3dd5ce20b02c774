"""v2.0 shapes: the read model's v2.1 objects converted for ``/v2.0/...`` (docs/v2-api.md).

The read model and the legacy streams hold v2.1 objects only; ``/v2.0`` answers convert them
on the way out, so one store serves both versions and a v2.0 consumer never sees a field or a
value its version does not define. The conversion is pure (v2.1 object → v2.0 object):

- fields v2.0 does not define are dropped (``enrollments``, ``ext``, ``department``, a
  district's ``district_contact``, ``login_methods``, ``portal_url``);
- values outside v2.0's enums are mapped: a grade v2.0 lacks (``InfantToddler``,
  ``Preschool``, ``TransitionalKindergarten``, ``13``, ``Ungraded``) becomes ``"Other"``, an
  empty grade becomes null (v2.0 grades are nullable but have no ``""``), gender ``"X"``
  becomes ``""`` (v2.0's "not given"), a null contact ``type`` becomes ``""``;
- a section ``subject`` or district ``state`` that is null or ``""`` (neither is a v2.0 value
  for those non-nullable fields) is left out, and so is the district ``state`` ``"success"``:
  Clever's v2.0 client spec, and the v2.0 SDK generated from it, reject it.

Events get the same conversion for ``data.object``; ``previous_attributes`` keeps the v2.0
fields, mapped by the same rules, and drops a key whose mapped previous value equals the
mapped current one (a change v2.0 cannot see, e.g. grade ``13`` → ``Ungraded``).

Why here and not in :mod:`relay.translate`: the conversion is pure, but it is serving logic.
Nothing the relay stores is v2.0 (the translator writes v2.1 only), the converters are chosen by
the URL a request came in on (:data:`~relay.v2api.records.PATHS`, ``RELATIONS``), and they are
applied to aiohttp responses on the way out; ``relay.translate`` stays the v3 → v2.1 mapping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from relay.translate import v2
from relay.v2api.records import PATHS, RELATIONS

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from relay.redis.keys import ReadModelKeys
    from relay.v2api.context import V2Context

    Handler = Callable[[web.Request, V2Context, ReadModelKeys], Awaitable[web.Response]]
    Converter = Callable[[dict[str, Any]], dict[str, Any]]

V20 = "v2.0"

V21_ONLY: dict[str, frozenset[str]] = {
    "students": frozenset(("enrollments", "ext")),
    "teachers": frozenset(("ext",)),
    "schooladmins": frozenset(("department", "ext")),
    "schools": frozenset(("ext",)),
    "sections": frozenset(("ext",)),
    "districts": frozenset(("district_contact", "login_methods", "portal_url")),
}
"""The fields v2.1 added to each record type."""
_STRUCTS: dict[str, type[msgspec.Struct]] = {
    "students": v2.Student,
    "teachers": v2.Teacher,
    "contacts": v2.Contact,
    "districtadmins": v2.DistrictAdmin,
    "schooladmins": v2.SchoolAdmin,
    "schools": v2.School,
    "sections": v2.Section,
    "districts": v2.District,
    "courses": v2.Course,
    "terms": v2.Term,
}
FIELDS: dict[str, frozenset[str]] = {
    record_type: frozenset(f.encode_name for f in msgspec.structs.fields(struct))
    - V21_ONLY.get(record_type, frozenset())
    for record_type, struct in _STRUCTS.items()
}
"""v2 record type → the properties of its ``v2.0.yml`` definition."""

GRADES = frozenset(
    ["PreKindergarten", "Kindergarten", *(str(n) for n in range(1, 13)), "PostGraduate", "Other"]
)
"""v2.0's grade enum (nullable)."""

_OMIT: Any = object()
"""A rule's answer for "leave the field out"."""


def _grade(value: Any) -> Any:
    if value is None or value in GRADES:
        return value
    return None if value == "" else "Other"


def _gender(value: Any) -> Any:
    return "" if value == "X" else value


def _contact_type(value: Any) -> Any:
    return "" if value is None else value


def _present(value: Any) -> Any:
    return _OMIT if value is None or value == "" else value


def _district_state(value: Any) -> Any:
    # "success" is in v2.0.yml but not in Clever's v2.0 client spec, from which its v2.0 SDK
    # was generated: that SDK rejects the whole /districts answer over it.
    return _OMIT if value in (None, "", "success") else value


RULES: dict[str, dict[str, Callable[[Any], Any]]] = {
    "students": {"grade": _grade, "gender": _gender},
    "sections": {"grade": _grade, "subject": _present},
    "schools": {"low_grade": _grade, "high_grade": _grade},
    "contacts": {"type": _contact_type},
    "districts": {"state": _district_state},
}
"""v2 record type → field → the value v2.0 gets (or :data:`_OMIT`)."""


def _fields(record_type: str, values: dict[str, Any]) -> dict[str, Any]:
    """The v2.0 fields of ``values``, mapped by :data:`RULES`, in their original order."""
    fields = FIELDS[record_type]
    rules = RULES.get(record_type, {})
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name not in fields:
            continue
        rule = rules.get(name)
        mapped = value if rule is None else rule(value)
        if mapped is not _OMIT:
            out[name] = mapped
    return out


def convert(record_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The v2.0 object for a v2.1 object of ``record_type`` (a read-model record type)."""
    if record_type not in FIELDS:
        return obj
    return _fields(record_type, obj)


def convert_event(event: dict[str, Any]) -> dict[str, Any]:
    """A legacy event with its ``data.object`` and ``previous_attributes`` in v2.0 shapes."""
    record_type = str(event.get("type", "")).partition(".")[0]
    data = event.get("data")
    if record_type not in FIELDS or not isinstance(data, dict):
        return event
    obj = data.get("object")
    if not isinstance(obj, dict):
        return event
    new_data = dict(data)
    current = new_data["object"] = _fields(record_type, obj)
    previous = data.get("previous_attributes")
    if isinstance(previous, dict):
        mapped = _fields(record_type, previous)
        new_data["previous_attributes"] = {
            k: v for k, v in mapped.items() if k not in current or current[k] != v
        }
    return {**event, "data": new_data}


def served_type(request: web.Request) -> str:
    """The record type a successful Data request answers (a relation's member type)."""
    parent = PATHS[request.match_info["collection"]]
    relation = request.match_info.get("relation")
    return parent if relation is None else RELATIONS[parent][relation].member


_decoder = msgspec.json.Decoder(dict[str, Any])


def reshape(response: web.Response, converter: Converter) -> web.Response:
    """``response`` with every object in its ``data`` converted; errors pass unchanged."""
    if response.status != 200 or not isinstance(response.body, bytes):
        return response
    body = _decoder.decode(response.body)
    data = body.get("data")
    if isinstance(data, list):
        for entry in data:
            entry["data"] = converter(entry["data"])
    elif isinstance(data, dict):
        body["data"] = converter(data)
    return web.Response(body=msgspec.json.encode(body), content_type="application/json")


def events_handler(version: str, handler: Handler) -> Handler:
    """``handler`` as ``version`` serves it: v2.0 events carry v2.0 objects."""
    if version != V20:
        return handler

    async def wrapped(request: web.Request, ctx: V2Context, rk: ReadModelKeys) -> web.Response:
        return reshape(await handler(request, ctx, rk), convert_event)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def data_handler(version: str, handler: Handler) -> Handler:
    """``handler`` as ``version`` serves it: v2.0 Data answers carry v2.0 objects."""
    if version != V20:
        return handler

    async def wrapped(request: web.Request, ctx: V2Context, rk: ReadModelKeys) -> web.Response:
        response = await handler(request, ctx, rk)
        if response.status != 200:
            return response
        record_type = served_type(request)
        return reshape(response, lambda obj: convert(record_type, obj))

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped
