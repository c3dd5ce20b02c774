"""Every Redis key name the relay uses, built in one place (docs/messages.md lists them).

With Redis Cluster the prefix carries a hash tag (``{clever}``) so keys written together by
one Lua call land in one slot; nothing here needs to know that, as long as every key starts
with the prefix. The strings are a contract: ``<p>:events``, ``<p>:legacy:<rt>``,
``<p>:deadletter`` and ``<p>:cursor:<d>`` are documented for consumers, and deployments hold
data under the others, so a name here changes only with a migration.

- :class:`Keys`: the relay's own keys (events, cursors, leases, translator state, fleet);
  :meth:`Keys.read_model` and :meth:`Keys.webhook` give the per-district and per-endpoint ones.
- :class:`ReadModelKeys`: the v2 read model of one district, all under ``<p>:v2:<district>``.
  Every key of a district shares that base, so the Lua writers
  (:mod:`relay.readmodel.writer`) build them from the one string (with a hash-tagged prefix
  they stay in one cluster slot):

  Every key of a district shares the base ``<p>:v2:<district>``, so the Lua writers can build
  them from that one string (with a hash-tagged prefix they stay in one cluster slot):

  - ``<base>:obj:<rt>``: hash v2 id → v2.1 object JSON, per v2 record type (``students`` ...
    ``schooladmins``, ``sections``, ``schools``, ``districts``, ``courses``, ``terms``);
  - ``<base>:ids:<rt>``: sorted set of the same ids, score 0, for ``ZRANGEBYLEX`` paging;
  - ``<base>:refs:<rt>``: hash v2 id → the object's references (``<rt>:<id>`` lines), to move
    it between reverse relations when they change;
  - ``<base>:rel:<rt>:<id>:<member_rt>``: sorted set (score 0) of the ``member_rt`` ids that point
    at object ``<rt>/<id>`` (a school's students, a student's contacts, a teacher's sections ...);
  - ``<base>:events``: stream of the district's legacy events, entry id derived from the legacy
    id (:func:`stream_id`), fields ``type`` and ``data`` (the v2 event JSON);
  - ``<base>:events:<rt>``, ``<base>:events:school:<id>`` and
    ``<base>:events:schooltype:<rt>:<id>``: index streams (same entry ids, field ``r`` = record
    type) for the ``record_type`` and ``school`` filters and the two together;
  - ``<base>:idmap``: hash ``<rt>:<v2 id>`` → v3 user id and ``v3:<rt>:<v3 id>`` → v2 id;
  - ``<base>:sync``: hash of a running sync's progress (resumable after a crash).

- :class:`EndpointKeys`: one webhook endpoint's keys, under ``<p>:webhooks``
  (``docs/webhooks.md``).
"""

from __future__ import annotations

import zlib

PARTITIONS_KEY = "partitions"
"""``<p>:partitions``: the partition count a deployment was started with (refused if changed)."""


def partition_of(district: str, partitions: int) -> int:
    """The partition of ``district``: CRC-32 (zlib, IEEE) of its id's UTF-8 bytes modulo
    ``partitions``. A contract: it never changes across versions, or districts would move
    between partitions and their cursors, streams and state with them."""
    if partitions <= 1:
        return 0
    return zlib.crc32(district.encode()) % partitions


def partition_prefix(prefix: str, index: int) -> str:
    """Partition ``index``'s prefix: the prefix's hash tag (or, without one, the whole prefix)
    with ``.p<index>`` appended inside the braces, so each partition is one Cluster slot:
    ``clever`` -> ``{clever.p0}``, ``{clever}`` -> ``{clever.p0}``, ``a:{b}`` -> ``a:{b.p0}``."""
    start = prefix.find("{")
    end = prefix.find("}", start + 1) if start >= 0 else -1
    if start >= 0 and end > start + 1:
        return f"{prefix[:end]}.p{index}{prefix[end:]}"
    return f"{{{prefix}.p{index}}}"


def fence(lease_key: str) -> str:
    """The counter that numbers acquisitions of the lease ``lease_key`` (its fencing token)."""
    return f"{lease_key}:fence"


class Keys:
    """Key names under one prefix, split into ``partitions`` partitions (docs/scaling.md).

    With one partition (the default) every name is ``<prefix>:...`` exactly as always. With
    more, the streams and the translator's state exist once per partition (:meth:`partition`,
    under :func:`partition_prefix`), and every per-district name (cursor, lease, snapshots,
    crosswalk, read model, fleet state) lives in the district's partition
    (:func:`partition_of`), so one Lua call never spans two Cluster slots. Only the replica
    registries (:attr:`replicas`, :attr:`translator_replicas`, :attr:`webhooks_replicas`) and
    :attr:`partitions_key` stay under the bare prefix (and :attr:`fleet_known`, which is used
    per partition: ``partition(i).fleet_known``).
    """

    def __init__(self, prefix: str, partitions: int = 1) -> None:
        self.prefix = prefix
        self.partitions = max(1, partitions)
        self._parts = (
            [Keys(partition_prefix(prefix, i)) for i in range(self.partitions)]
            if self.partitions > 1
            else [self]
        )
        self.partitions_key = f"{prefix}:{PARTITIONS_KEY}"
        self.events = f"{prefix}:events"
        self.deadletter = f"{prefix}:deadletter"
        self.translator_position = f"{prefix}:translator:position"
        self.translator_lease = f"{prefix}:translator:lease"
        self.translator_held = f"{prefix}:translator:held"
        self.translator_emitted = f"{prefix}:translator:emitted"
        self.translator_replicas = f"{prefix}:translator:replicas"
        """Sorted set of replicas running the translator, by last heartbeat (partition leases)."""
        self.webhooks_replicas = f"{prefix}:webhooks:replicas"
        """Sorted set of replicas running webhook delivery, by last heartbeat (partitions)."""
        self.replicas = f"{prefix}:replicas"
        """Sorted set of live relay replicas scored by last heartbeat (district lease sharing)."""
        self.fleet_known = f"{prefix}:fleet:districts"
        """Set of every district discovery has ever seen (docs/fleet.md); with partitions, one
        per partition (``partition(i).fleet_known``), holding that partition's districts."""

    def partition(self, index: int) -> Keys:
        """The keys of partition ``index`` (this object itself with one partition)."""
        return self._parts[index]

    def all_partitions(self) -> list[Keys]:
        """Every partition's keys, in partition order."""
        return list(self._parts)

    def of(self, district: str) -> Keys:
        """The keys of ``district``'s partition."""
        if self.partitions == 1:
            return self
        return self._parts[partition_of(district, self.partitions)]

    def cursor(self, district: str) -> str:
        """The last Clever event id published for ``district``."""
        return f"{self.of(district).prefix}:cursor:{district}"

    def all_pattern(self) -> str:
        """A SCAN pattern matching every key under the prefix."""
        return f"{self.prefix}:*"

    def cursor_pattern(self) -> str:
        """A SCAN pattern matching every cursor key (of this partition)."""
        return f"{self.prefix}:cursor:*"

    def legacy(self, record_type: str) -> str:
        """The legacy v2 stream of one record type, e.g. ``clever:legacy:students``."""
        return f"{self.prefix}:legacy:{record_type}"

    def users(self, district: str) -> str:
        """Hash of the last known v3 user JSON by user id, for diffing ``users.updated``."""
        return f"{self.of(district).prefix}:users:{district}"

    def poll_state(self, district: str) -> str:
        """Hash of a district's poll health (last success, last error), shown in /status."""
        return f"{self.of(district).prefix}:pollstate:{district}"

    def lease(self, district: str) -> str:
        """A district's polling lease (scale-out)."""
        return f"{self.of(district).prefix}:lease:{district}"

    def lease_fence(self, district: str) -> str:
        """The counter that numbers acquisitions of a district's lease (its fencing token)."""
        return fence(self.lease(district))

    def idmap_v3(self, district: str) -> str:
        """ID crosswalk: hash v3 user id → its roles' v2 ids (:mod:`relay.readmodel.crosswalk`)."""
        return f"{self.of(district).prefix}:idmap:{district}:v3"

    def idmap_v2(self, district: str) -> str:
        """ID crosswalk: hash v2 id → (v3 user id, role) (:mod:`relay.readmodel.crosswalk`)."""
        return f"{self.of(district).prefix}:idmap:{district}:v2"

    def idmap_expiry(self, district: str) -> str:
        """ID crosswalk: deleted mappings by deletion time, ms (``readmodel.crosswalk``)."""
        return f"{self.of(district).prefix}:idmap:{district}:expiry"

    @property
    def webhooks_lease(self) -> str:
        """The single-active lease of webhook delivery (one replica sends)."""
        return f"{self.prefix}:webhooks:lease"

    def teachers(self, district: str) -> str:
        """Hash of teacher v3 user id → v2 legacy id for one district."""
        return f"{self.of(district).prefix}:teachers:{district}"

    def read_model(self, district: str) -> ReadModelKeys:
        """The keys of ``district``'s v2 read model."""
        return ReadModelKeys(self.of(district).prefix, district)

    def webhook(self, name: str) -> EndpointKeys:
        """The keys of webhook endpoint ``name``."""
        return EndpointKeys(self.prefix, name)

    def fleet(self, district: str) -> str:
        """Hash of a discovered district's fleet state: phase, onboarding progress, removal."""
        return f"{self.of(district).prefix}:fleet:{district}"


class ReadModelKeys:
    """Key names of one district's read model."""

    def __init__(self, prefix: str, district: str) -> None:
        self.district = district
        self.base = f"{prefix}:v2:{district}"
        self.events = f"{self.base}:events"
        self.idmap = f"{self.base}:idmap"
        self.sync = f"{self.base}:sync"

    def objects(self, record_type: str) -> str:
        """Hash v2 id → object JSON."""
        return f"{self.base}:obj:{record_type}"

    def ids(self, record_type: str) -> str:
        """Sorted set of the record type's v2 ids (score 0)."""
        return f"{self.base}:ids:{record_type}"

    def rel(self, record_type: str, object_id: str, member_type: str) -> str:
        """Sorted set of the ``member_type`` ids that refer to ``record_type/object_id``."""
        return f"{self.base}:rel:{record_type}:{object_id}:{member_type}"

    def events_of_type(self, record_type: str) -> str:
        """Index stream of the district's events of one record type."""
        return f"{self.base}:events:{record_type}"

    def events_of_school(self, school_id: str) -> str:
        """Index stream of the district's events related to one school."""
        return f"{self.base}:events:school:{school_id}"

    def events_of_school_type(self, school_id: str, record_type: str) -> str:
        """Index stream of the district's events of one record type related to one school
        (so ``school`` with ``record_type`` reads one page, never a school's whole index)."""
        return f"{self.base}:events:schooltype:{record_type}:{school_id}"

    def sync_seen(self, record_type: str) -> str:
        """Set of the ids a running sync has written (to drop the others at its end)."""
        return f"{self.base}:sync:seen:{record_type}"


class EndpointKeys:
    """Key names for endpoint ``name`` under ``prefix``."""

    def __init__(self, prefix: str, name: str) -> None:
        base = f"{prefix}:webhooks"
        self.name = name
        self.group = f"webhooks:{name}"
        """Consumer group on each source stream; its last-delivered-id is the read position."""
        self.deadletter = f"{base}:deadletter:{name}"
        self.due = f"{base}:due:{name}"
        """Sorted set: district -> when its queue head is due (ms); present iff queue non-empty."""
        self.attempts = f"{base}:attempts:{name}"
        """Hash: district -> failed attempts of its current queue head."""
        self.state = f"{base}:state:{name}"
        """Hash: ``disabled`` (reason) and ``disabled_at`` after a 410 Gone."""
        self._queue = f"{base}:queue:{name}:"

    def queue(self, district: str) -> str:
        """List of the district's undelivered events, oldest (the one being tried) first."""
        return f"{self._queue}{district}"
