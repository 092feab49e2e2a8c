"""Interrupt remapping unit: IMS table, PASID verification, pending bits, fault queue."""

from .remapper import (Decision, FaultLayout, HANDLE_WIDTH, InterruptRemapper,
                       IrqLayout, MessageLayout, ProbeLayout)

__all__ = ["Decision", "FaultLayout", "HANDLE_WIDTH", "InterruptRemapper",
           "IrqLayout", "MessageLayout", "ProbeLayout"]
