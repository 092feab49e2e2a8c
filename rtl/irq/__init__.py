"""Interrupt remapping unit: IMS table, PASID verification, pending bits, fault queue."""

from .remapper import (Decision, FaultLayout, FaultReason, HANDLE_WIDTH, InterruptRemapper,
                       IrqLayout, MessageLayout, PASID_WIDTH, ProbeLayout)

__all__ = ["Decision", "FaultLayout", "FaultReason", "HANDLE_WIDTH", "InterruptRemapper",
           "IrqLayout", "MessageLayout", "PASID_WIDTH", "ProbeLayout"]
