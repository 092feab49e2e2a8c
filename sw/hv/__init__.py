"""The hypervisor side: the physical-function driver and, on it, the hypervisor."""
