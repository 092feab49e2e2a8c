"""Container access to the accelerator: one emulated device and one device node per container.

The host driver gives each container its own virtual device (one ADI, one
interrupt vector) and a device node, ``/dev/siov<N>``, that only that
container may open. An open node is a handle with map, submit and wait,
backed by the container's queue.

A container is known by its :class:`~siov.sw.hv.tenant.Tenant` object, never
by its name: :meth:`ContainerHost.open` takes the container itself and
compares identities, so a new container that takes a destroyed one's name
(or its freed domain) gets nothing of it. A node dies with its container:
:meth:`~siov.sw.hv.hypervisor.Hypervisor.destroy_tenant` removes it, and
every handle still open on it then refuses use with :class:`NodeClosed`, as
does a closed handle. Opening another container's node fails with
:class:`PermissionError` before anything of the other container is touched.

The hypervisor makes the device's one container host (``hv.containers``).
"""

from ..guest.driver import FrontendDriver
from .errors import NodeClosed
from .tenant import Tenant, TenantKind

__all__ = ["ContainerHost", "DeviceNode", "NodeHandle", "NodeClosed"]

NODE_PREFIX = "/dev/siov"


class DeviceNode:
    """``/dev/siov<N>``: the emulated device of one container.

    Attributes
    ----------
    path : str
    tenant : Tenant
        The container it belongs to.
    vdev : VirtualDevice
    ring_size : int
        Entries of the queue's ring, opened at the first :meth:`ContainerHost.open`.
    alive : bool
        False once its container is destroyed.
    """

    def __init__(self, path, tenant, vdev, ring_size):
        self.path, self.tenant, self.vdev, self.ring_size = path, tenant, vdev, ring_size
        self.handles = []
        self.driver = None
        self.alive = True

    @property
    def open_handles(self):
        """Handles open on the node now."""
        return sum(not h.closed for h in self.handles)


class NodeHandle:
    """An open device node: map, submit, wait on the container's own queue."""

    def __init__(self, node, driver, queue):
        self.node, self.driver, self.queue = node, driver, queue
        self.closed = False

    def _alive(self):
        if self.closed:
            raise NodeClosed(f"{self.node.path} was closed")
        if not self.node.alive:
            raise NodeClosed(f"{self.node.path} is gone: its container was destroyed")

    async def map(self, nbytes):
        """Allocate ``nbytes`` of the container's memory and map it for the device; its address."""
        self._alive()
        addr = self.driver.memory.alloc(nbytes)
        await self.driver.dma_map(addr, nbytes)
        return addr

    async def unmap(self, addr, nbytes):
        """Unmap ``nbytes`` at ``addr`` for the device and give the memory back."""
        self._alive()
        await self.driver.dma_unmap(addr, nbytes)
        self.driver.memory.free(addr)

    async def write(self, addr, data):
        """Write ``data`` into the container's memory at ``addr``."""
        self._alive()
        await self.driver.memory.write(addr, data)

    async def read(self, addr, n):
        """``n`` bytes of the container's memory at ``addr``."""
        self._alive()
        return await self.driver.memory.read(addr, n)

    async def submit(self, descriptors, interrupt=True):
        """Post ``descriptors`` on the container's queue (see :meth:`~siov.sw.guest.driver.Queue.submit`)."""
        self._alive()
        return await self.queue.submit(descriptors, interrupt=interrupt)

    async def wait(self, ticket, timeout_cycles=1_000_000, on=None):
        """The completion record of ``ticket`` (see :meth:`~siov.sw.guest.driver.Queue.wait`)."""
        self._alive()
        return await self.queue.wait(ticket, timeout_cycles, on=on)

    async def close(self):
        """Close the handle; the last one open drains and closes the container's queue."""
        self._alive()
        self.closed = True
        if not self.node.open_handles:
            await self.queue.drain()
            await self.queue.close()


class ContainerHost:
    """The host driver's side: containers, their nodes, and who may open which.

    Made by the hypervisor (``hv.containers``); a second container host of
    the same device is refused with :class:`~siov.sw.hv.errors.DeviceOwned`,
    since both would hand out ``/dev/siov0``.

    Attributes
    ----------
    nodes : dict
        Path -> :class:`DeviceNode` of every live container.
    """

    def __init__(self, hv):
        hv.pf.claim("containers", self)
        self.hv = hv
        self.nodes = {}

    def _free_path(self):
        n = 0
        while f"{NODE_PREFIX}{n}" in self.nodes:
            n += 1
        return f"{NODE_PREFIX}{n}"

    async def add_container(self, name, pages=64, ring_size=64):
        """A container tenant with its emulated device and node (the lowest free
        ``/dev/siov<N>``); returns the node. ``ring_size`` entries for its queue."""
        t = await self.hv.create_tenant(name, TenantKind.CONTAINER, pages)
        vdev = await self.hv.vdcm.create(t, adis=1)
        node = DeviceNode(self._free_path(), t, vdev, ring_size)
        self.nodes[node.path] = node
        return node

    def node_of(self, container):
        """The node of ``container`` (its :class:`Tenant`)."""
        node = next((n for n in self.nodes.values() if n.tenant is container), None)
        if node is None:
            raise FileNotFoundError(f"container {getattr(container, 'name', container)!r} has no device node")
        return node

    async def open(self, path, container):
        """Open node ``path`` on behalf of ``container`` (its :class:`Tenant`); only its own
        node opens, and only while it lives.

        Raises
        ------
        TypeError
            ``container`` is not a Tenant (a name is not an identity: it can be reused).
        FileNotFoundError
            No node at ``path``.
        PermissionError
            The node belongs to another container.
        """
        if not isinstance(container, Tenant):
            raise TypeError(f"open() takes the container's Tenant, not {container!r}: a name can be "
                            f"taken again after its container is gone")
        node = self.nodes.get(path)
        if node is None:
            raise FileNotFoundError(f"no device node {path}")
        if node.tenant is not container:
            raise PermissionError(f"container {container.name!r} may not open {path}, "
                                  f"which belongs to {node.tenant.name!r}")
        if node.driver is None:
            node.driver = await FrontendDriver(node.vdev).open()
        queue = node.driver.queues[0]
        if not queue.opened:
            await queue.open(node.ring_size)
            await queue.enable()
        handle = NodeHandle(node, node.driver, queue)
        node.handles.append(handle)
        return handle

    def forget(self, tenant):
        """``tenant`` is being destroyed: its node dies and every handle on it is refused from now on."""
        for path, node in list(self.nodes.items()):
            if node.tenant is tenant:
                node.alive = False
                del self.nodes[path]
