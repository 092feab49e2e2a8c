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

    [arbiter]
    policy = "wrr"           # rr | wrr | qos
    slice_cycles = 4000      # qos: slice length
    cost_a = 40              # cost model: A + B/256 per byte
    cost_b = 32

    [[tenants]]
    name = "vm0"
    kind = "vm"              # vm | container
    adis = 2
    weight = 2               # wrr
    quantum = 800            # qos: cost per slice
    pages = 64

    [[tenants.workloads]]
    kind = "copy"            # copy | fill | compare
    size = [64, 512]         # bytes, drawn uniformly
    batch = 4                # descriptors per doorbell
    interval = 500           # device cycles between batches (0: as fast as completions allow)
    interrupt = true

    [[faults]]
    tenant = "vm3"
    kind = "flood"           # flood | foreign_map | forged_pasid
    at = 50000               # device cycle
"""

import re
import tomllib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..rtl.params import DeviceParams

__all__ = ["Scenario", "ScenarioError", "load", "parse", "DEFAULT", "DEFAULT_SHORT"]


class ScenarioError(ValueError):
    """A scenario file that cannot run, with every problem found."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Device(_Strict):
    num_adis: int = 16
    ims_entries: int = 256
    num_domains: int = 8
    pages_per_domain: int = 4096

    def params(self):
        return DeviceParams(**self.model_dump())


class Arbiter(_Strict):
    policy: Literal["rr", "wrr", "qos"] = "rr"
    slice_cycles: int = Field(4000, ge=0, lt=1 << 24)
    cost_a: int = Field(40, ge=0, lt=1 << 24)
    cost_b: int = Field(32, ge=0, lt=1 << 16)


class Workload(_Strict):
    kind: Literal["copy", "fill", "compare"]
    size: tuple[int, int] = (64, 512)
    batch: int = Field(4, ge=1, le=64)
    interval: int = Field(0, ge=0)
    interrupt: bool = True
    seed: int = 0

    @model_validator(mode="after")
    def _sizes(self):
        lo, hi = self.size
        if not 1 <= lo <= hi <= 1 << 20:
            raise ValueError(f"size must be [min, max] with 1 <= min <= max <= 1048576, not [{lo}, {hi}]")
        return self


class Tenant(_Strict):
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    kind: Literal["vm", "container"] = "vm"
    adis: int = Field(1, ge=1)
    weight: int = Field(1, ge=0, le=255)
    quantum: int = Field(1000, ge=0, lt=1 << 24)
    pages: int = Field(64, ge=8)
    workloads: list[Workload] = Field(default_factory=list)


class Fault(_Strict):
    tenant: str
    kind: Literal["flood", "foreign_map", "forged_pasid"]
    at: int = Field(0, ge=0)


class Scenario(_Strict):
    cycles: int = Field(200_000, ge=1000)
    seed: int = 0
    device: Device = Device()
    arbiter: Arbiter = Arbiter()
    tenants: list[Tenant] = Field(min_length=1)
    faults: list[Fault] = Field(default_factory=list)

    @model_validator(mode="after")
    def _fits(self):
        p = self.device.params()
        names = [t.name for t in self.tenants]
        if len(set(names)) != len(names):
            raise ValueError(f"tenant names must be unique: {names}")
        total = sum(t.adis for t in self.tenants)
        if total > p.num_adis:
            raise ValueError(f"tenants ask for {total} ADIs; the device has {p.num_adis}")
        if len(self.tenants) > p.num_domains:
            raise ValueError(f"{len(self.tenants)} tenants; the device has {p.num_domains} DMA domains")
        for t in self.tenants:
            if t.pages > p.pages_per_domain:
                raise ValueError(f"tenant {t.name}: {t.pages} pages; a domain holds {p.pages_per_domain}")
            if self.arbiter.policy == "wrr" and t.weight == 0:
                raise ValueError(f"tenant {t.name}: weight 0 under weighted round robin")
        for f in self.faults:
            if f.tenant not in names:
                raise ValueError(f"fault names tenant {f.tenant!r}, which is not in tenants")
        return self


def _line_of(text, loc):
    """The line of the last key of ``loc`` in ``text`` (the first occurrence), or None."""
    keys = [k for k in loc if isinstance(k, str)]
    if not keys:
        return None
    m = re.search(rf"^\s*{re.escape(keys[-1])}\s*=|^\s*\[+\s*{re.escape(keys[-1])}\s*\]+", text, re.M)
    return text.count("\n", 0, m.start()) + 1 if m else None


def parse(text, source="<scenario>"):
    """A checked :class:`Scenario` from TOML ``text``; :class:`ScenarioError` otherwise."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{source}: not valid TOML: {e}") from None
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
            where = _line_of(text, err["loc"])
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"{source}{f':{where}' if where else ''}: {loc}: {msg}")
        raise ScenarioError("\n".join(lines)) from None
    except (TypeError, ValueError) as e:        # DeviceParams' own checks
        raise ScenarioError(f"{source}: device: {e}") from None


def load(path):
    with open(path, encoding="utf-8") as f:
        return parse(f.read(), str(path))


#: The built-in scenario: four VMs and two containers with mixed work, and one that misbehaves.
DEFAULT = """\
cycles = 300000
seed = 1

[device]
num_adis = 16

[arbiter]
policy = "wrr"
slice_cycles = 4000

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
"""


#: The built-in scenario of the rtl backend: short enough for a Verilator run of about a minute.
DEFAULT_SHORT = """\
cycles = 30000
seed = 1

[arbiter]
policy = "rr"

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
