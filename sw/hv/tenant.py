"""A tenant as the hypervisor knows it: a VM or a container, its domain, PASID and memory.

The :class:`Tenant` object *is* the tenant's identity: the hypervisor, the
VDCM and the container host compare tenants by identity, never by name, so a
name reused after a tenant is destroyed names a different tenant.
"""

import enum
from dataclasses import dataclass, field

from .guest_memory import GuestMemory
from .vic import VirtualInterruptController

__all__ = ["Tenant", "TenantKind"]


class TenantKind(enum.Enum):
    """A tenant is a VM (guest driver on its virtual device) or a container (a device node)."""
    VM = "vm"
    CONTAINER = "container"


@dataclass(eq=False)
class Tenant:
    """A VM or container as the hypervisor knows it; made by
    :meth:`~siov.sw.hv.hypervisor.Hypervisor.create_tenant`.

    Attributes
    ----------
    domain, pasid, dest : int
        Its DMA domain, its PASID, and the x86 destination ID of its virtual
        interrupt controller.
    memory : GuestMemory
        Its guest memory, the domain's window of host memory; refuses every
        access once the tenant is destroyed.
    vic : VirtualInterruptController
        Where its interrupts are raised.
    faults : list of DmaFault or IrqFault
        The fault records naming its PASID, in the order the hypervisor drained them.
    hypercalls : dict
        ``map`` and ``unmap``: hypercalls carried out; ``refused``: hypercalls
        of either kind refused (they changed nothing and are not in the other two).
    unpinned : int
        Pages reclaimed from it by lazy unpinning.
    unmap_requested_at : dict
        Guest page -> device cycle of its pending unmap request, as far as the
        hypervisor knows it (:mod:`siov.sw.hv.unpin`).
    alive : bool
        False once the tenant is destroyed.
    """
    name: str
    kind: TenantKind
    domain: int
    pasid: int
    dest: int
    memory: GuestMemory
    vic: VirtualInterruptController
    faults: list = field(default_factory=list)
    hypercalls: dict = field(default_factory=lambda: {"map": 0, "unmap": 0, "refused": 0})
    unpinned: int = 0
    unmap_requested_at: dict = field(default_factory=dict)
    alive: bool = True

    @property
    def pages(self):
        """Size of its guest memory in pages."""
        return self.memory.pages

    def note_unmap(self, page, cycle):
        """The guest's unmap request of ``page`` was accepted at device cycle ``cycle``."""
        self.unmap_requested_at[page] = cycle

    def note_map(self, page):
        """The guest mapped ``page`` again: the device cancelled its unmap request."""
        self.unmap_requested_at.pop(page, None)
