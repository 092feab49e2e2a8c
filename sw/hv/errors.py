"""The hypervisor layer's exceptions: one base, :class:`HypervisorError`, for all of them.

Everything ``sw/hv`` raises on purpose derives from :class:`HypervisorError`,
so a host program can catch the layer's refusals in one clause and still
tell them apart. Where an error is also a kind of Python built-in error (a
bad argument is a ``ValueError``), it derives from that too, so code written
against the built-in keeps working:

* :class:`HypercallError` (``ValueError``): a map or unmap hypercall refused;
  nothing changed;
* :class:`NoCapacity` (``RuntimeError``): no free DMA domain, ADI or
  interrupt handle;
* :class:`DeviceOwned`: a second owner of one device's resources (a second
  :class:`~siov.sw.hv.pf.PfDriver`, hypervisor, VDCM or container host);
* :class:`DeviceTimeout` (``RuntimeError``): the device did not finish an
  operation in the cycles allowed;
* :class:`VirtualMmioError`: a guest access to its virtual device refused;
  nothing changed; :class:`AdiInUse`: an ADI asked for belongs to another
  virtual device;
* :class:`GuestAddressError` (``ValueError``) and :class:`OutOfGuestMemory`
  (``MemoryError``): guest memory used outside its bounds, or exhausted;
* :class:`NodeClosed`: a container's device-node handle used after it was
  closed or its container destroyed;
* :class:`~siov.sw.hv.config_space.ConfigWriteError`: a configuration-space
  write refused.

The guest driver's errors are a layer of their own
(:class:`~siov.sw.guest.driver.GuestDriverError`).
"""

__all__ = ["HypervisorError", "HypercallError", "NoCapacity", "DeviceOwned", "DeviceTimeout",
           "VirtualMmioError", "AdiInUse", "GuestAddressError", "OutOfGuestMemory", "NodeClosed"]


class HypervisorError(Exception):
    """Base of every error the hypervisor layer (``sw/hv``) raises."""


class HypercallError(HypervisorError, ValueError):
    """A hypercall with bad arguments, or one the device refused; nothing was changed."""


class NoCapacity(HypervisorError, RuntimeError):
    """The device has no free domain, ADI or interrupt handle left."""


class DeviceOwned(HypervisorError):
    """The device's resources already have an owner of this kind: one driver, hypervisor, VDCM
    and container host per device, reached through the hypervisor (or :meth:`PfDriver.of`)."""


class DeviceTimeout(HypervisorError, RuntimeError):
    """The device did not finish an operation within the cycles allowed."""


class VirtualMmioError(HypervisorError):
    """A guest access to its virtual device that the device model refuses; nothing changed."""


class AdiInUse(HypervisorError):
    """An ADI asked for is assigned to another virtual device."""


class GuestAddressError(HypervisorError, ValueError):
    """An access or a free outside the guest's memory, of something never allocated, or of the
    memory of a tenant that is gone."""


class OutOfGuestMemory(HypervisorError, MemoryError):
    """No free run of pages is large enough."""


class NodeClosed(HypervisorError):
    """A device-node handle used after it was closed, or after its container was destroyed."""
