"""Container access to the accelerator: one emulated device and one device node per container.

The host driver gives each container its own virtual device (one ADI, one
interrupt vector) and a device node, ``/dev/siov<N>``, that only that
container may open. An open node is a handle with map, submit and wait,
backed by the container's queue; opening another container's node fails
with :class:`PermissionError` before anything of the other container is
touched, and a closed handle refuses every use with :class:`NodeClosed`.
"""

from ..guest.driver import FrontendDriver
from .hypervisor import TenantKind

__all__ = ["ContainerHost", "DeviceNode", "NodeHandle", "NodeClosed"]


class NodeClosed(RuntimeError):
    """A device-node handle used after it was closed."""


class DeviceNode:
    """``/dev/siov<N>``: the emulated device of one container."""

    def __init__(self, path, tenant, vdev):
        self.path, self.tenant, self.vdev = path, tenant, vdev
        self.open_handles = 0
        self.driver = None


class NodeHandle:
    """An open device node: map, submit, wait on the container's own queue."""

    def __init__(self, node, driver, queue):
        self.node, self.driver, self.queue = node, driver, queue
        self.closed = False

    def _alive(self):
        if self.closed:
            raise NodeClosed(f"{self.node.path} was closed")

    async def map(self, nbytes):
        """Allocate ``nbytes`` of the container's memory and map it for the device; its address."""
        self._alive()
        addr = self.driver.memory.alloc(nbytes)
        await self.driver.dma_map(addr, nbytes)
        return addr

    async def unmap(self, addr, nbytes):
        self._alive()
        await self.driver.dma_unmap(addr, nbytes)
        self.driver.memory.free(addr)

    async def write(self, addr, data):
        self._alive()
        await self.driver.memory.write(addr, data)

    async def read(self, addr, n):
        self._alive()
        return await self.driver.memory.read(addr, n)

    async def submit(self, descriptors, interrupt=True):
        self._alive()
        return await self.queue.submit(descriptors, interrupt=interrupt)

    async def wait(self, ticket, timeout_cycles=1_000_000):
        self._alive()
        return await self.queue.wait(ticket, timeout_cycles)

    async def close(self):
        self._alive()
        self.closed = True
        self.node.open_handles -= 1
        if not self.node.open_handles:       # the last handle stops the queue
            await self.queue.drain()
            await self.queue.close()


class ContainerHost:
    """The host driver's side: containers, their nodes, and who may open which."""

    def __init__(self, hv, ring_size=64):
        self.hv = hv
        self.ring_size = ring_size
        self.nodes = {}

    async def add_container(self, name, pages=64):
        """A container tenant with its emulated device and node; returns the node."""
        t = await self.hv.create_tenant(name, TenantKind.CONTAINER, pages)
        vdev = await self.hv.vdcm.create(t, adis=1)
        node = DeviceNode(f"/dev/siov{len(self.nodes)}", t, vdev)
        self.nodes[node.path] = node
        return node

    def node_of(self, container):
        return next(n for n in self.nodes.values() if n.tenant.name == container)

    async def open(self, path, container):
        """Open node ``path`` on behalf of ``container``; only its own node opens."""
        node = self.nodes.get(path)
        if node is None:
            raise FileNotFoundError(f"no device node {path}")
        if node.tenant.name != container:
            raise PermissionError(f"container {container!r} may not open {path}, "
                                  f"which belongs to {node.tenant.name!r}")
        if node.driver is None:
            node.driver = await FrontendDriver(node.vdev).open()
        queue = node.driver.queues[0]
        if not queue.opened:
            await queue.open(self.ring_size)
            await queue.enable()
        node.open_handles += 1
        return NodeHandle(node, node.driver, queue)
