"""Elaboration parameters of the device, checked once, in one place."""

from dataclasses import dataclass

__all__ = ["DeviceParams", "require_params"]


def _check_range(name, value, lo, hi, *, power_of_two=False):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, not {value}")
    if power_of_two and value & (value - 1):
        raise ValueError(f"{name} must be a power of two, not {value}")


@dataclass(frozen=True)
class DeviceParams:
    """What the device is built with; reported to software in CAP0/CAP1.

    Parameters
    ----------
    num_adis : int
        Assignable interfaces, 1..64 (default 16).
    ims_entries : int
        Interrupt message store entries, a power of two 16..2048 (default 256).
    num_domains : int
        DMA domains, 1..64 (default 8).
    pages_per_domain : int
        4 KiB pages tracked per domain, a power of two 64..65536 (default 4096).
    num_engines : int
        Descriptor engines, 1..4 (default 2); reported in CAP0.NUM_ENGINES.
    """
    num_adis: int = 16
    ims_entries: int = 256
    num_domains: int = 8
    pages_per_domain: int = 4096
    num_engines: int = 2

    def __post_init__(self):
        _check_range("Number of ADIs", self.num_adis, 1, 64)
        _check_range("Number of IMS entries", self.ims_entries, 16, 2048, power_of_two=True)
        _check_range("Number of DMA domains", self.num_domains, 1, 64)
        _check_range("Pages per domain", self.pages_per_domain, 64, 65536, power_of_two=True)
        _check_range("Number of engines", self.num_engines, 1, 4)

    @property
    def tag(self):
        """Short string naming this parameter set, for build folders."""
        return (f"a{self.num_adis}_i{self.ims_entries}_d{self.num_domains}_p{self.pages_per_domain}"
                f"_e{self.num_engines}")


def require_params(params, what):
    """``params`` if it is a :class:`DeviceParams`; a TypeError naming ``what`` otherwise."""
    if not isinstance(params, DeviceParams):
        raise TypeError(f"{what} parameters must be a DeviceParams, not {params!r}")
    return params
