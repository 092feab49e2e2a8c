"""The scenario file of ``siov run``: its schema, its checks, and the built-in default.

A scenario is TOML. Every key is read by something: an unknown key is an
error, as is a missing one without a default, a value of the wrong type, and
a value the device or the policy cannot take (a tenant with no ADIs, more
ADIs than the device has, a weight of zero under weighted round robin).
Errors name the key, and the line where it is in the file; nothing runs.

Example::

    cycles = 200000          # length of the run, device cycles
    seed = 1

    [device]                 # elaboration parameters (rtl/params.py)
    num_adis = 16
    num_engines = 2          # descriptor engines (the Device's default)

    [arbiter]                # the arbiters' policy, when no [scheduler] programs them
    policy = "wrr"           # rr | wrr | qos
    slice_cycles = 4000      # qos: slice length
    cost_a = 40              # cost model: A + B/256 per byte
    cost_b = 32

    # or, instead of [arbiter]: the GPU scheduler (sw/sched) programs the arbiters and the mask
    [scheduler]
    policy = "auto"          # per-ring | gang | auto | qos
    tick = 8192              # device cycles between two scans of every ring
    slice_cycles = 2000      # gang and qos: the time slice

    [checkpoint]             # optional: the checkpointer (sw/ckpt) protects the VMs
    mode = "ha"              # ha | migrate
    interval = 20000         # device cycles between two checkpoints (ha) or pre-copy iterations (migrate)
    failover = 150000        # ha: the primary fails here; its last committed epoch is restored and checked

    [[tenants]]
    name = "vm0"
    kind = "vm"              # vm | container
    adis = 2
    weight = 2               # wrr
    quantum = 800            # qos: cost per slice
    pages = 64
    engines = [0, 1]         # engine of each queue (default: the VDCM spreads them)

    [[tenants.workloads]]
    kind = "copy"            # copy | fill | compare | dependent
    size = [64, 512]         # bytes, drawn uniformly
    batch = 4                # descriptors per doorbell
    interval = 500           # device cycles between batches (0: as fast as completions allow)
    interrupt = true

    [[tenants.workloads]]
    kind = "dependent"       # producer queue 0, consumer queue 1, joined by SIGNAL and WAIT
    size = [256, 1024]
    depth = 4                # pairs in one chain, posted together
    interval = 2000

    [[faults]]
    tenant = "vm3"
    kind = "flood"           # flood | foreign_map | forged_pasid | unmap_in_flight | outside_window | forged_handle | use_after_unpin
    at = 50000               # device cycle
"""

import re
import tomllib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..rtl.cmd.dsa import MAX_XFER
from ..rtl.params import DeviceParams

__all__ = ["Scenario", "SchedulerConfig", "Checkpoint", "ScenarioError", "load", "parse", "with_policy", "example_text", "DEFAULT",
           "DEFAULT_SHORT"]


class ScenarioError(ValueError):
    """A scenario file that cannot run, with every problem found."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Device(_Strict):
    """``[device]``: the Device's elaboration parameters (rtl/params.py)."""
    num_adis: int = Field(16, description="assignable interfaces (queues) of the Device")
    ims_entries: int = Field(256, description="interrupt message store entries")
    num_domains: int = Field(8, description="DMA domains: one per tenant")
    pages_per_domain: int = Field(4096, description="4 KiB pages a domain's window can hold")
    num_engines: int = Field(2, description="descriptor engines, each with its own arbiter over its ADIs")

    def params(self):
        return DeviceParams(**self.model_dump())


class Arbiter(_Strict):
    """``[arbiter]``: the engines' arbitration policy and its budget parameters, when no scheduler runs."""
    policy: Literal["rr", "wrr", "qos"] = Field("rr", description="rr | wrr (weights) | qos (time-slice budgets)")
    slice_cycles: int = Field(4000, ge=0, lt=1 << 24, description="qos: slice length in device cycles")
    cost_a: int = Field(40, ge=0, lt=1 << 24, description="cost model: A + B/256 per byte (A)")
    cost_b: int = Field(32, ge=0, lt=1 << 16, description="cost model: B, per 256 bytes")


class SchedulerConfig(_Strict):
    """``[scheduler]``: the GPU scheduler (sw/sched) programs the arbiters and the eligibility mask."""
    policy: Literal["per-ring", "gang", "auto", "qos"] = Field(
        "auto", description="per-ring | gang | auto | qos")
    tick: int = Field(8192, ge=64, lt=1 << 24, description="device cycles between two scans of every ring")
    slice_cycles: int = Field(2000, ge=100, lt=1 << 24, description="gang and qos: the time slice, device cycles")


class Checkpoint(_Strict):
    """``[checkpoint]``: the checkpointer (sw/ckpt) protects the VMs: HA checkpoints, or a live migration.

    ``ha`` takes a checkpoint of every VM each ``interval`` device cycles (aligned to a
    predicted completion) and, at ``failover``, restores the last committed epoch onto a
    stand-in virtual device and checks it against the primary; ``migrate`` live-migrates each
    VM onto a stand-in, a pre-copy iteration each ``interval`` cycles, then stop and copy
    (:func:`siov.sw.ckpt.scenario.drive`). The stand-ins are on the same Device: room for the
    largest VM's ADIs and one more DMA domain is checked.
    """
    mode: Literal["ha", "migrate"] = Field("ha", description="ha (checkpoints, failover) | migrate (live migration)")
    interval: int = Field(20_000, ge=1000, lt=1 << 32, description="device cycles between two checkpoints "
                          "(ha) or two pre-copy iterations (migrate)")
    failover: "int | None" = Field(None, ge=0, description="ha: device cycle the primary fails at; a secondary "
                                   "takes over from its last checkpoint (default: no failure)")


class Workload(_Strict):
    """``[[tenants.workloads]]``: a stream of descriptors one tenant posts.

    ``dependent`` is a producer (queue 0) and a consumer (queue 1) joined by semaphores: each
    chain posts, for ``depth`` pairs, a WAIT and a copy on the consumer, then a fill and the
    SIGNAL the WAIT is for on the producer, and waits for all of them.
    """
    kind: Literal["copy", "fill", "compare", "dependent"] = Field(description="copy | fill | compare | dependent")
    size: tuple[int, int] = Field((64, 512), description="[min, max] bytes, drawn uniformly")
    batch: int = Field(4, ge=1, le=64, description="descriptors per doorbell")
    depth: int = Field(4, ge=1, le=16, description="dependent: SIGNAL-WAIT pairs in one chain")
    interval: int = Field(0, ge=0, description="device cycles between batches (0: as fast as completions allow)")
    interrupt: bool = Field(True, description="ask for a completion interrupt")
    seed: int = Field(0, description="offsets this workload's random draws")



class Tenant(_Strict):
    """``[[tenants]]``: a VM or a container with its virtual device and its work."""
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", description="unique name")
    kind: Literal["vm", "container"] = Field("vm", description="vm | container (one device node)")
    adis: int = Field(1, ge=1, description="queues of its virtual device")
    weight: int = Field(1, ge=0, le=255, description="wrr: its share of grants")
    quantum: int = Field(1000, ge=0, lt=1 << 24, description="qos: cost it may spend per slice")
    pages: int = Field(64, ge=8, description="4 KiB pages of guest memory")
    engines: "list[int] | None" = Field(None, min_length=1, description="engine of each queue, queue k on "
                                        "engines[k % len] (default: the VDCM spreads them)")
    workloads: list[Workload] = Field(default_factory=list)


class Fault(_Strict):
    """``[[faults]]``: a misbehaviour injected into one tenant.

    ``flood``, ``foreign_map`` and ``forged_pasid`` are refused before the device
    runs anything; ``unmap_in_flight``, ``outside_window``, ``forged_handle`` and
    ``use_after_unpin`` make the device fault (sw/programs/scenario.py says how).
    """
    tenant: str = Field(description="the tenant that misbehaves")
    kind: Literal["flood", "foreign_map", "forged_pasid", "unmap_in_flight", "outside_window", "forged_handle",
                  "use_after_unpin"] = Field(
        description="flood | foreign_map | forged_pasid | unmap_in_flight | outside_window | forged_handle | "
                    "use_after_unpin")
    at: int = Field(0, ge=0, description="device cycle it starts")


class Scenario(_Strict):
    """A whole scenario file, checked field by field (the cross-field checks are in :func:`parse`)."""
    cycles: int = Field(200_000, ge=1000, lt=1 << 48, description="length of the run, device cycles")
    seed: int = Field(0, description="seed of every random draw (siov run --seed overrides it)")
    device: Device = Device()
    arbiter: Arbiter = Arbiter()
    scheduler: "SchedulerConfig | None" = None
    checkpoint: "Checkpoint | None" = None
    tenants: list[Tenant] = Field(min_length=1)
    faults: list[Fault] = Field(default_factory=list)



def _cross_checks(sc):
    """Problems no single field shows, each as ``(location, message)``: a location is the
    path of keys and list indices of the value at fault, as pydantic gives its own."""
    p = sc.device.params()
    problems = []
    seen = {}
    for i, t in enumerate(sc.tenants):
        if t.name in seen:
            problems.append((("tenants", i, "name"), f"tenant name {t.name!r} is used by tenant "
                                                      f"{seen[t.name]} too; names must be unique"))
        seen.setdefault(t.name, i)
        if t.pages > p.pages_per_domain:
            problems.append((("tenants", i, "pages"), f"{t.pages} pages; a domain holds {p.pages_per_domain}"))
        if sc.scheduler is not None and t.weight == 0:
            problems.append((("tenants", i, "weight"), f"tenant {t.name}: weight 0; the scheduler shares time by "
                                                       f"weight, so it would never run"))
        elif sc.arbiter.policy == "wrr" and t.weight == 0:
            problems.append((("tenants", i, "weight"), f"tenant {t.name}: weight 0 under weighted round robin "
                                                       f"would never run"))
        for j, w in enumerate(t.workloads):
            lo, hi = w.size
            if not 1 <= lo <= hi <= MAX_XFER:
                problems.append((("tenants", i, "workloads", j, "size"),
                                 f"size must be [min, max] with 1 <= min <= max <= {MAX_XFER}, not [{lo}, {hi}]"))
            if w.kind == "dependent" and (t.kind != "vm" or t.adis < 2):
                problems.append((("tenants", i, "workloads", j, "kind"),
                                 f"tenant {t.name}: a dependent workload needs a VM with 2 ADIs or more "
                                 f"(producer and consumer rings)"))
        for e in t.engines or ():
            if not 0 <= e < p.num_engines:
                problems.append((("tenants", i, "engines"), f"tenant {t.name}: engine {e}; the device has "
                                                           f"{p.num_engines} (0..{p.num_engines - 1})"))
    total = sum(t.adis for t in sc.tenants)
    if total > p.num_adis:
        problems.append((("tenants",), f"tenants ask for {total} ADIs; the device has {p.num_adis}"))
    if len(sc.tenants) > p.num_domains:
        problems.append((("tenants",), f"{len(sc.tenants)} tenants; the device has {p.num_domains} DMA domains"))
    if sc.scheduler is not None and "arbiter" in sc.model_fields_set:
        problems.append((("arbiter",), "a [scheduler] programs the arbiters itself; give [arbiter] or "
                                       "[scheduler], not both"))
    ck = sc.checkpoint
    if ck is not None:
        if ck.interval >= sc.cycles:
            problems.append((("checkpoint", "interval"), f"interval {ck.interval} is not shorter than the run "
                                                         f"({sc.cycles} cycles): no checkpoint would be taken"))
        if ck.failover is not None and ck.mode != "ha":
            problems.append((("checkpoint", "failover"), f"failover is a cycle of mode 'ha'; a migration "
                                                         f"(mode {ck.mode!r}) has none"))
        elif ck.failover is not None and ck.failover >= sc.cycles:
            problems.append((("checkpoint", "failover"), f"failover at cycle {ck.failover} is past the run's end "
                                                         f"({sc.cycles} cycles)"))
        vms = [t for t in sc.tenants if t.kind == "vm"]
        if not vms:
            problems.append((("checkpoint",), "the checkpointer protects VMs; the scenario has none"))
        else:       # a failover's secondary and a migration's destination: a stand-in VM on this Device
            room = max(t.adis for t in vms)
            if total + room > p.num_adis:
                problems.append((("checkpoint",), f"the checkpointer restores each VM onto a stand-in of as many "
                                                  f"ADIs on this Device: {total} + {room} ADIs; it has {p.num_adis}"))
            if len(sc.tenants) + 1 > p.num_domains:
                problems.append((("checkpoint",), f"the checkpointer's stand-in VM needs a DMA domain: "
                                                  f"{len(sc.tenants)} tenants + 1; the device has {p.num_domains}"))
    for k, f in enumerate(sc.faults):
        if f.tenant not in seen:
            problems.append((("faults", k, "tenant"), f"fault names tenant {f.tenant!r}, which is not in tenants"))
    return problems


def with_policy(sc, policy):
    """Scenario ``sc`` run under scheduling policy ``policy`` (``siov run --policies``): its
    ``[scheduler]`` with that policy, or a default one if it has none, in place of ``[arbiter]``."""
    if policy not in SchedulerConfig.model_fields["policy"].annotation.__args__:
        raise ScenarioError(f"unknown scheduling policy {policy!r}; choose among "
                            f"{', '.join(SchedulerConfig.model_fields['policy'].annotation.__args__)}")
    cfg = (sc.scheduler or SchedulerConfig()).model_copy(update={"policy": policy})
    return Scenario.model_validate({**sc.model_dump(exclude={"arbiter", "scheduler"}),
                                    "scheduler": cfg.model_dump()})


def _line_of(text, loc):
    """The line of the value at ``loc`` (keys and list indices, as pydantic gives them) in
    ``text``, or None: the ``n``-th ``[[table]]`` of an array of tables, then the key inside it."""
    lines = text.splitlines()
    start, end, path = 0, len(lines), []
    header = re.compile(r"^\s*\[")
    for k, key in enumerate(loc):
        if isinstance(key, int):
            continue
        path.append(key)
        index = loc[k + 1] if k + 1 < len(loc) and isinstance(loc[k + 1], int) else None
        if index is not None:
            table = re.compile(rf"^\s*\[\[\s*{re.escape('.'.join(path))}\s*\]\]")
            hits = [n for n in range(start, end) if table.match(lines[n])]
            if index >= len(hits):
                return None
            start = hits[index]
            # the table ends at the next header that is not one of its own sub-tables
            own = re.compile(rf"^\s*\[+\s*{re.escape('.'.join(path))}\.")
            end = next((n for n in range(start + 1, end) if header.match(lines[n]) and not own.match(lines[n])),
                       end)
            continue
        pat = re.compile(rf"^\s*{re.escape(key)}\s*=|^\s*\[+\s*{re.escape('.'.join(path))}\s*\]+")
        hit = next((n for n in range(start, end) if pat.match(lines[n])), None)
        if hit is None:
            return start + 1 if path[:-1] and start else None
        if k == len(loc) - 1:
            return hit + 1
        start = hit
    return start + 1 if loc else None


def parse(text, source="<scenario>"):
    """A checked :class:`Scenario` from TOML ``text``; :class:`ScenarioError` otherwise.

    Every problem is reported as ``source:line: key: message``, field checks and
    cross-field checks alike, in the project's words.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{source}: not valid TOML: {e}") from None
    try:
        sc = Scenario.model_validate(data)
        problems = _cross_checks(sc)
    except ValidationError as e:
        problems = [(err["loc"], "unknown key" if err["type"] == "extra_forbidden"
                     else _PYDANTIC_PREFIX.sub("", err["msg"])) for err in e.errors()]
    except (TypeError, ValueError) as e:        # DeviceParams' own checks
        problems = [(("device",), str(e))]
    if problems:
        raise ScenarioError("\n".join(_where(source, text, loc) + msg for loc, msg in problems))
    return sc


#: pydantic's wording before a validator's own message ("Value error, ...").
_PYDANTIC_PREFIX = re.compile(r"^(Value|Assertion) error, ")


def _where(source, text, loc):
    line = _line_of(text, loc)
    key = ".".join(str(x) for x in loc) or "(top level)"
    return f"{source}{f':{line}' if line else ''}: {key}: "


def load(path):
    """A checked :class:`Scenario` from the TOML file at ``path``; :class:`ScenarioError` otherwise."""
    with open(path, encoding="utf-8") as f:
        return parse(f.read(), str(path))


#: The built-in scenario: five VMs and two containers with mixed work on both engines, one VM
#: whose producer and consumer rings depend on each other (the scheduler gangs it), one that
#: floods the engines with large copies, and faults of every kind.
DEFAULT = """\
cycles = 300000
seed = 1

[device]
num_adis = 16
num_engines = 2

[scheduler]
policy = "auto"
tick = 8192
slice_cycles = 2000

[[tenants]]
name = "vm0"
adis = 2
weight = 2
[[tenants.workloads]]
kind = "copy"
size = [64, 256]
batch = 2
interval = 800
[[tenants.workloads]]
kind = "compare"
size = [256, 1024]
batch = 1
interval = 3000

[[tenants]]
name = "vm1"
adis = 2
weight = 2
[[tenants.workloads]]
kind = "copy"
size = [4096, 16384]
batch = 4
interval = 0
interrupt = false

[[tenants]]
name = "pc"
adis = 2
engines = [0, 1]
[[tenants.workloads]]
kind = "dependent"
size = [256, 1024]
depth = 4
interval = 2000

[[tenants]]
name = "vm2"
adis = 1
[[tenants.workloads]]
kind = "fill"
size = [512, 4096]
batch = 4
interval = 2000

[[tenants]]
name = "vm3"
adis = 1
[[tenants.workloads]]
kind = "copy"
size = [64, 128]
batch = 8
interval = 1000

[[tenants]]
name = "ctr0"
kind = "container"
[[tenants.workloads]]
kind = "copy"
size = [64, 512]
batch = 2
interval = 1500

[[tenants]]
name = "ctr1"
kind = "container"
[[tenants.workloads]]
kind = "fill"
size = [1024, 8192]
batch = 2
interval = 4000

[[faults]]
tenant = "vm3"
kind = "flood"
at = 60000

[[faults]]
tenant = "vm3"
kind = "foreign_map"
at = 120000

[[faults]]
tenant = "vm3"
kind = "forged_pasid"
at = 180000

[[faults]]
tenant = "vm2"
kind = "unmap_in_flight"
at = 90000

[[faults]]
tenant = "ctr0"
kind = "outside_window"
at = 150000

[[faults]]
tenant = "vm0"
kind = "forged_handle"
at = 210000

[[faults]]
tenant = "ctr1"
kind = "use_after_unpin"
at = 240000
"""


#: The built-in scenario of the rtl backend, short enough for a Verilator run of a few seconds
#: once the Device is built: two VMs and a container beside a VM whose producer and consumer
#: rings depend on each other, under the GPU scheduler (auto) over both engines.
DEFAULT_SHORT = """\
cycles = 30000
seed = 1

[device]
num_engines = 2

[scheduler]
policy = "auto"
tick = 4096
slice_cycles = 2000

[[tenants]]
name = "pc"
adis = 2
engines = [0, 1]
[[tenants.workloads]]
kind = "dependent"
size = [256, 1024]
depth = 3
interval = 1000

[[tenants]]
name = "vm0"
adis = 2
[[tenants.workloads]]
kind = "copy"
size = [64, 1024]
batch = 2
interval = 500

[[tenants]]
name = "vm1"
[[tenants.workloads]]
kind = "fill"
size = [256, 2048]
batch = 2
interval = 800

[[tenants]]
name = "ctr0"
kind = "container"
[[tenants.workloads]]
kind = "compare"
size = [64, 512]
batch = 1
interval = 600

[[faults]]
tenant = "vm1"
kind = "foreign_map"
at = 10000
"""


#: The table of each header, for :func:`example_text`.
_TABLES = {"": Scenario, "device": Device, "arbiter": Arbiter, "scheduler": SchedulerConfig, "checkpoint": Checkpoint,
           "tenants": Tenant,
           "tenants.workloads": Workload, "faults": Fault}


def example_text():
    """The built-in scenario as a starting file: every key commented from the schema's descriptions."""
    out = ["# A siov scenario: siov run FILE. An unknown key or a bad value is refused with its line.", ""]
    table = Scenario
    for line in DEFAULT.splitlines():
        head = re.match(r"^\s*\[+\s*([\w.]+)\s*\]+", line)
        key = re.match(r"^\s*(\w+)\s*=", line)
        if head:
            table = _TABLES.get(head.group(1), table)
            doc = (table.__doc__ or "").splitlines()[0].split(":", 1)[-1].strip().rstrip(".")
            out.append(f"{line:<34}# {doc}" if doc else line)
        elif key and key.group(1) in table.model_fields and table.model_fields[key.group(1)].description:
            out.append(f"{line:<34}# {table.model_fields[key.group(1)].description}")
        else:
            out.append(line)
    return "\n".join(out) + "\n"
