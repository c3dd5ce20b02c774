"""One batch of events-stream entries turned into one :class:`~relay.translator.store.BatchWrite`.

Entries are translated strictly in stream order. The batch reads what it needs first (user
snapshots and teacher ids: one HMGET per district; missing teachers from the Data API,
concurrently), then translates in memory, carrying snapshot and teacher-id updates from one
entry to the next, so a batch costs a fixed number of round trips however large it is.

An entry that cannot be translated *now* (a teacher look-up failed, an unexpected error)
holds its district (:mod:`relay.translator.held`): it and every later entry of that district are
set aside in the same write and retried alone, while the other districts' entries of the batch
go out; translating a later entry of the held district first would reorder it. An entry that
can *never* be translated goes to the dead-letter stream in the same write.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec

from relay.logs import get_logger
from relay.messages import CONTROL_PREFIX, EventMessage
from relay.readmodel import crosswalk
from relay.readmodel.writer import event_op
from relay.translate.ids import legacy_ids, parse_stream_id, stream_time, time_ms
from relay.translate.rules import (
    TeacherLookupNeeded,
    Translation,
    UntranslatableError,
    decode_user,
    encode_legacy_event,
    section_teacher_user_ids,
    translate,
)
from relay.translator.held import Holds
from relay.translator.store import BatchWrite

if TYPE_CHECKING:
    from relay.redis.keys import Keys
    from relay.translate import v3
    from relay.translate.rules import LegacyOut
    from relay.translator.group import Entry
    from relay.translator.lookup import TeacherLookup
    from relay.translator.store import Store

log = get_logger("translator")

USER_RECORD_TYPES = frozenset(
    ("students", "teachers", "schooladmins", "districtadmins", "contacts")
)
"""v2 record types made from v3 users: their read-model write records the v3 user id."""
SKIP_CONTROL = "control_entry"
"""Skip reason of relay control entries (``relay.cursor_lost``, ``relay.district_*``)."""


_message_decoder = msgspec.json.Decoder(EventMessage)


@dataclass(frozen=True, slots=True)
class _Msg:
    """An entry's message, decoded once: for ``users.*`` also the v3 user and its id."""

    msg: EventMessage
    user: v3.User | None
    user_id: str | None


@dataclass(frozen=True, slots=True)
class _Dead:
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class _Wait:
    reason: str


class _Done:
    """Marks an entry at or below the stored position: written before, only acknowledged."""


class _Control:
    """Marks a relay control entry (``relay.cursor_lost``): skipped, acknowledged."""


DONE = _Done()
CONTROL = _Control()
_Decoded = _Msg | _Dead | _Done | _Control


@dataclass
class Outcome:
    """What a batch wrote (once committed) and which districts it held back."""

    write: BatchWrite
    waits: dict[str, tuple[str, str]] = field(default_factory=dict)
    """District → (entry id, reason) of each district whose entry failed in this batch."""
    held: list[tuple[str, str]] = field(default_factory=list)
    """(district, entry id) of every entry set aside in this batch, in stream order."""
    deferred: set[str] = field(default_factory=set)
    """Districts re-held because no release ids were left at the position (not a failure)."""
    translated: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    dead: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    """Parts of Clever's ``previous_attributes`` read around, by note (``rules.NOTE_*``)."""


@dataclass
class _State:
    """What the batch knows, updated entry by entry as translations come back."""

    users: dict[tuple[str, str], bytes | None]
    teachers: dict[str, dict[str, str]]
    missing: dict[tuple[str, str], str] = field(default_factory=dict)
    gone: dict[str, set[str]] = field(default_factory=dict)
    """Per district, the teacher user ids Clever answered 404 for (``missing``'s ids)."""
    failed: dict[tuple[str, str], str] = field(default_factory=dict)
    written: _Carry = field(default_factory=lambda: _Carry({}, {}))
    """The snapshot and teacher-id writes of this batch (see :class:`_Carry`)."""


@dataclass
class _Carry:
    """Snapshot and teacher-id writes of a batch whose commit may still be in flight.

    The consumer overlaps a batch's commit with reading and translating the next one, whose
    HMGETs may then run before that commit: the next batch reads these on top of them.
    """

    users: dict[tuple[str, str], bytes | None]
    teachers: dict[tuple[str, str], str]


_Result = tuple[_Msg, Translation] | _Dead | _Done | _Control


def _after(stream_id: str, position: tuple[int, int] | None) -> bool:
    return position is None or parse_stream_id(stream_id) > position


def _message(msg: EventMessage) -> _Msg:
    user = decode_user(msg)
    return _Msg(msg, user, None if user is None else user.id)


def _decode(entry: Entry) -> _Msg | _Dead | _Control:
    """The entry's message, a dead letter if it is unreadable, or :data:`CONTROL`."""
    if entry.fields is None:
        return _Dead("entry_trimmed", "the entry was trimmed from the stream while pending")
    if entry.fields.get(b"type", b"").decode(errors="replace").startswith(CONTROL_PREFIX):
        return CONTROL
    try:
        return _message(_message_decoder.decode(entry.fields.get(b"data", b"")))
    except msgspec.DecodeError as exc:
        return _Dead("invalid_message", str(exc))


@dataclass(frozen=True, slots=True)
class Prepared:
    """A batch decoded and with its reads done, ready for :meth:`BatchTranslator.finish`."""

    entries: list[Entry]
    todo: list[tuple[Entry, _Decoded]]
    state: _State
    retrying: str | None = None
    """The held district whose set-aside entries these are (None: a batch of the stream)."""
    position: str | None = None
    """The stored position the batch was prepared at (released ids are based on it)."""


class BatchTranslator:
    """Builds the atomic write of one batch."""

    def __init__(
        self,
        *,
        keys: Keys,
        store: Store,
        lookup: TeacherLookup,
        record_types: frozenset[str],
        max_deliveries: int,
        read_model: bool = False,
        idmap_retention_s: float = crosswalk.DEFAULT_RETENTION_S,
        holds: Holds | None = None,
    ) -> None:
        self.keys = keys
        self.idmap_retention_s = idmap_retention_s
        """How long deleted crosswalk mappings stay resolvable (``relay.readmodel.crosswalk``)."""
        self.read_model = read_model
        """Also keep the v2 read model (docs/v2-api.md) in the same write as the legacy events."""
        self.store = store
        self.lookup = lookup
        self.record_types = record_types
        self.max_deliveries = max_deliveries
        self._carry = _Carry({}, {})
        self.holds = holds or Holds()

    def forget(self) -> None:
        """Drop the previous batch's writes: its commit failed, or the lease changed hands."""
        self._carry = _Carry({}, {})

    async def build(
        self, entries: list[Entry], *, deliveries: dict[str, int], position: str | None
    ) -> Outcome:
        """Translate ``entries`` (in order) after ``position`` into one write.

        Entries at or below ``position`` were written before: they are only acknowledged.
        """
        return await self.finish(
            await self.prepare(entries, deliveries=deliveries, position=position)
        )

    async def prepare(
        self,
        entries: list[Entry],
        *,
        deliveries: dict[str, int],
        position: str | None,
        retrying: str | None = None,
    ) -> Prepared:
        """The I/O half of :meth:`build`: decode, read snapshots and teacher ids.

        Prepared on top of the previous batch's writes (even if its commit is not sent yet),
        so the consumer can read ahead, send that commit, then :meth:`finish` on pure CPU.
        Held districts (other than ``retrying``) are neither read nor looked up for.
        """
        after = parse_stream_id(position) if position is not None else None
        if entries and _after(entries[0].stream_id, after):
            after = None  # entries come in stream order: all of them are after the position
        held = self.holds.ids
        todo: list[tuple[Entry, _Decoded]] = []
        for entry in entries:
            sid = entry.stream_id
            if after is not None and not _after(sid, after) and sid not in held:
                todo.append((entry, DONE))
                continue
            times = deliveries.get(entry.stream_id, 0)
            decoded: _Decoded = _decode(entry)
            if times > self.max_deliveries and not isinstance(decoded, _Dead):
                decoded = _Dead("max_deliveries", f"delivered {times} times without success")
            todo.append((entry, decoded))
        blocked = self.holds.districts.keys() - {retrying}
        state = await self._prefetch(
            [m for _, m in todo if isinstance(m, _Msg) and m.msg.district not in blocked]
        )
        return Prepared(entries, todo, state, retrying, position)

    async def finish(self, prepared: Prepared) -> Outcome:
        """The translating half of :meth:`build` (I/O only for rare teacher look-ups).

        Entries of held districts are set aside; an entry that must wait holds its district
        for the rest of the batch. :attr:`holds` is updated at once (the consumer reloads it
        from Redis if this batch's write is not confirmed).
        """
        outcome = Outcome(BatchWrite(self.keys))
        state, retrying = prepared.state, prepared.retrying
        blocked = set(self.holds.districts) - {retrying}
        release_at = prepared.position if retrying is not None else None
        for entry, decoded in prepared.todo:
            district = _district_of(entry, decoded)
            if decoded is not DONE and district in blocked:
                self._hold(outcome, entry, district)
                continue
            if release_at is not None and not self.holds.can_release(release_at):
                # No ids left at this position: the rest waits until other entries move it.
                outcome.deferred.add(district)
                blocked.add(district)
                self._hold(outcome, entry, district)
                continue
            result = await self._one(decoded, state)
            if isinstance(result, _Wait):
                outcome.waits[district] = (entry.stream_id, result.reason)
                blocked.add(district)
                self._hold(outcome, entry, district)
                continue
            self._record(outcome, entry, result, release_at)
        self._carry = state.written
        self._update_holds(outcome, prepared)
        return outcome

    @staticmethod
    def _hold(outcome: Outcome, entry: Entry, district: str) -> None:
        outcome.write.begin(entry.stream_id)
        outcome.write.hold(district)
        outcome.held.append((district, entry.stream_id))

    def _update_holds(self, outcome: Outcome, prepared: Prepared) -> None:
        """Mirror the batch's holds in memory; a retried district drops what went out."""
        holds, retrying = self.holds, prepared.retrying
        if retrying is not None:
            kept = {sid for district, sid in outcome.held if district == retrying}
            holds.written(
                retrying, [e.stream_id for e in prepared.entries if e.stream_id not in kept]
            )
        for district, sid in outcome.held:
            holds.add(district, sid)
        for district in outcome.deferred:
            holds.defer(district, holds.base_s)
        for district, (sid, reason) in outcome.waits.items():
            delay = holds.failed(district, reason)
            log.warning(
                "translation_waiting", district=district, entry=sid, reason=reason, retry_in_s=delay
            )

    async def _prefetch(self, messages: list[_Msg]) -> _State:
        users: dict[str, list[str]] = {}
        refs: dict[str, list[str]] = {}
        for item in messages:
            msg = item.msg
            if item.user_id is not None:
                users.setdefault(msg.district, []).append(item.user_id)
            elif msg.record_type == "sections" and "sections" in self.record_types:
                refs.setdefault(msg.district, []).extend(section_teacher_user_ids(msg))
        state = _State(users=await self.store.users(users), teachers={})
        state.users.update(self._carry.users)
        known = await self.store.teachers({d: sorted(set(ids)) for d, ids in refs.items()})
        known.update(self._carry.teachers)
        for (district, uid), legacy in known.items():
            state.teachers.setdefault(district, {})[uid] = legacy
        lookups = []
        for district, ids in refs.items():
            seen_here = set(users.get(district, ()))
            unknown = {
                uid for uid in ids if uid not in state.teachers.get(district, {})
            } - seen_here
            lookups.append(self._look_up(district, unknown, state))
        # Concurrently: one district's slow Data API must not add up with another's.
        await asyncio.gather(*lookups)
        return state

    async def _look_up(self, district: str, user_ids: set[str], state: _State) -> None:
        if not user_ids:
            return
        result = await self.lookup.fetch(district, user_ids)
        state.teachers.setdefault(district, {}).update(result.found)
        state.missing.update(((district, uid), why) for uid, why in result.missing.items())
        if result.missing:
            state.gone.setdefault(district, set()).update(result.missing)
        state.failed.update(((district, uid), why) for uid, why in result.failed.items())
        await self.store.cache_teachers(district, result.found)

    async def _one(self, decoded: _Decoded, state: _State) -> _Result | _Wait:
        if not isinstance(decoded, _Msg):
            return decoded
        msg, user_id = decoded.msg, decoded.user_id
        teachers = state.teachers.setdefault(msg.district, {})
        for attempt in range(2):
            try:
                tr = translate(
                    msg,
                    previous_user=state.users.get((msg.district, user_id)) if user_id else None,
                    teacher_legacy_ids=teachers,
                    record_types=self.record_types,
                    user=decoded.user,
                    gone_teachers=state.gone.get(msg.district, frozenset()),
                )
            except UntranslatableError as exc:
                return _Dead(exc.reason, str(exc))
            except TeacherLookupNeeded as exc:
                verdict = self._unresolvable(msg.district, exc.user_ids, state)
                if verdict is not None:
                    return verdict
                if attempt == 0:
                    await self._look_up(msg.district, set(exc.user_ids), state)
                continue
            except Exception as exc:
                log.exception("translation_crashed", event_id=msg.id, type=msg.type)
                return _Wait(f"internal error: {type(exc).__name__}: {exc}")
            _remember(state, msg, user_id, tr)
            return (decoded, tr)
        return _Wait("teacher ids still unknown after a look-up")

    @staticmethod
    def _unresolvable(district: str, user_ids: list[str], state: _State) -> _Dead | _Wait | None:
        """A dead letter if a teacher can never be mapped, a wait if its look-up failed."""
        keys = [(district, uid) for uid in user_ids]
        if gone := [state.missing[k] for k in keys if k in state.missing]:
            return _Dead("teacher_not_found", "; ".join(gone))
        if failed := [state.failed[k] for k in keys if k in state.failed]:
            return _Wait("; ".join(failed))
        return None

    def _record(
        self, outcome: Outcome, entry: Entry, result: _Result, release_at: str | None = None
    ) -> None:
        write = outcome.write
        write.begin(entry.stream_id)
        fields = entry.fields or {}
        if isinstance(result, _Dead):
            write.dead_letter(
                reason=result.reason,
                detail=result.detail,
                district=fields.get(b"district", b"").decode(errors="replace"),
                source=fields.get(b"id", b"").decode(errors="replace"),
                data=fields.get(b"data", b""),
            )
            outcome.dead[result.reason] += 1
        elif isinstance(result, _Control):
            outcome.skipped[SKIP_CONTROL] += 1
        elif isinstance(result, tuple):
            item, tr = result
            if release_at is None:
                ids = legacy_ids(entry.stream_id, len(tr.events), self.holds.partition)
                self.holds.note(ids)
            else:
                ids = self.holds.release_ids(entry.stream_id, release_at, len(tr.events))
            self._translated(outcome, entry, ids, item, tr)

    def _translated(
        self, outcome: Outcome, entry: Entry, ids: list[str], item: _Msg, tr: Translation
    ) -> None:
        write, msg, user_id, stream_id = outcome.write, item.msg, item.user_id, entry.stream_id
        # Clever's time of the event; without one, the time the relay read it (never "").
        created = msg.created or stream_time(stream_id)
        for out, lid in zip(tr.events, ids, strict=True):
            data = encode_legacy_event(out, lid, created)
            write.legacy(
                out.record_type,
                legacy_id=lid,
                type_=out.type,
                district=msg.district,
                source=msg.id,
                data=data,
            )
            if self.read_model:
                self._read_model(
                    write, out, district=msg.district, legacy_id=lid, data=data, user_id=user_id
                )
            outcome.translated[out.type] += 1
        if tr.skipped is not None:
            outcome.skipped[tr.skipped] += 1
        if tr.dead:
            self._dead_roles(outcome, entry, item.msg, tr.dead)
        outcome.notes.update(tr.notes)
        if user_id is not None and tr.delete_snapshot:
            write.drop_user(msg.district, user_id)
        elif user_id is not None and tr.user_snapshot is not None:
            at = time_ms(msg.created) if msg.created else None
            write.put_user(
                msg.district, user_id, tr.user_snapshot, at or parse_stream_id(stream_id)[0]
            )
        for uid, legacy in tr.teacher_ids.items():
            write.put_teacher(msg.district, uid, legacy)
        if item.user is not None:
            crosswalk.record(
                write,
                self.keys,
                msg.district,
                item.user,
                deleted=msg.action == "deleted",
                keep_s=self.idmap_retention_s,
            )

    @staticmethod
    def _dead_roles(
        outcome: Outcome, entry: Entry, msg: EventMessage, dead: list[tuple[str, str]]
    ) -> None:
        """Dead-letter each role that cannot be translated (the detail names the role), marked
        partial: the user's other roles went out, so replaying the whole event would repeat them
        (a sync repairs the role instead)."""
        data = (entry.fields or {}).get(b"data", b"")
        for reason, detail in dead:
            outcome.write.dead_letter(
                reason=reason,
                detail=detail,
                district=msg.district,
                source=msg.id,
                data=data,
                partial=True,
            )
            outcome.dead[reason] += 1

    def _read_model(
        self,
        write: BatchWrite,
        out: LegacyOut,
        *,
        district: str,
        legacy_id: str,
        data: bytes,
        user_id: str | None,
    ) -> None:
        """Add the v2 read model's write of one legacy event (skipped, logged, if unreadable)."""
        try:
            op = event_op(
                out,
                prefix=self.keys.prefix,
                district=district,
                legacy_id=legacy_id,
                data=data,
                v3_id=user_id if out.record_type in USER_RECORD_TYPES else None,
            )
        except (msgspec.DecodeError, ValueError) as exc:
            log.warning("read_model_skipped", type=out.type, legacy_id=legacy_id, error=str(exc))
            return
        write.read_model(op)


def _district_of(entry: Entry, decoded: _Decoded) -> str:
    """The entry's district ("" when the entry is unreadable: it is never held back)."""
    if isinstance(decoded, _Msg):
        return decoded.msg.district
    fields = entry.fields or {}
    return fields.get(b"district", b"").decode(errors="replace")


def _remember(state: _State, msg: EventMessage, user_id: str | None, tr: Translation) -> None:
    """Carry a translation's snapshot and teacher-id updates to the rest of the batch."""
    if user_id is not None and tr.delete_snapshot:
        state.users[(msg.district, user_id)] = state.written.users[(msg.district, user_id)] = None
    elif user_id is not None and tr.user_snapshot is not None:
        snapshot = bytes(tr.user_snapshot)
        state.users[(msg.district, user_id)] = state.written.users[(msg.district, user_id)] = (
            snapshot
        )
    state.teachers.setdefault(msg.district, {}).update(tr.teacher_ids)
    for uid, legacy in tr.teacher_ids.items():
        state.written.teachers[(msg.district, uid)] = legacy
