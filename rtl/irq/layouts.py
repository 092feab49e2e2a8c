"""Payloads of the interrupt remapper's streams, its fault records and its probe.

Ref: Intel Scalable IOV spec (IMS), x86 MSI address/data format, Intel VT-d
interrupt-remapping fault records. Shared by the remapper's parts
(rtl/irq/remapper.py, pipeline.py, window.py), its testbenches and formal
harnesses.
"""

import enum

from amaranth.lib import data

from ..dma.defs import PASID_BITS

__all__ = ["HANDLE_WIDTH", "Decision", "MessageLayout", "IrqLayout", "FaultLayout", "ProbeLayout"]

#: Width of an interrupt handle (the IMS entry index, with room beyond the table).
HANDLE_WIDTH = 16


class Decision(enum.IntEnum):
    """What the decide stage did with a message."""
    DMA = 0
    DELIVER = 1
    PEND = 2
    FAULT = 3


#: An upstream message from an ADI.
MessageLayout = data.StructLayout({
    "is_irq": 1,
    "pasid": PASID_BITS,
    "handle": HANDLE_WIDTH,
    "addr": 64,
    "data": 32,
})

#: A remapped interrupt. ``dest`` and ``vector`` are the interrupt; ``handle``
#: and ``pasid`` name its source (for tracing and isolation checks).
IrqLayout = data.StructLayout({
    "dest": 8,
    "vector": 8,
    "handle": HANDLE_WIDTH,
    "pasid": PASID_BITS,
})

#: A fault record, as queued.
FaultLayout = data.StructLayout({
    "reason": 8,
    "pasid": PASID_BITS,
    "handle": HANDLE_WIDTH,
})

#: Observation points for testbenches and formal harnesses (not used by the design).
ProbeLayout = data.StructLayout({
    "dec_valid": 1,             # a decision is reported this cycle (the effect stage; it was
                                # taken three cycles before, against the IMS as it stood then)
    "dec_kind": 2,              # Decision
    "dec_replay": 1,            # ... and it is a replay of a pending interrupt
    "dec_reason": 8,            # IrqFaultReason when dec_kind is FAULT
    "dec_handle": HANDLE_WIDTH,
    "dec_pasid": PASID_BITS,
    "replay_take": 1,           # a replay is accepted this cycle
    "ims_busy": 1,              # an IMS access is between stb and ack
    "ims_ack": 1,               # an IMS access commits this cycle
    "ims_we": 1,
    "ims_addr": 15,             # byte address inside the IMS window
    "ims_wdata": 32,
    "ims_wstrb": 4,
    "ims_rdata": 32,
    "ims_resp": 2,
    "eff_irq": 1,               # delivered: on irq_out past the queue, or into the queue
    "eff_dma": 1,               # pushed into the dma_out queue (three cycles before the report)
    "eff_pend": 1,              # set a pending bit
    "eff_fault": 1,             # pushed into the fault queue (two cycles after the report)
    "eff_lost": 1,              # not queued (queue full, or its source at its quota), idem
    "irq_level": 3,             # irq_out queue occupancy
    "dma_level": 3,             # dma_out queue occupancy
    "irq_full": 1,
    "dma_full": 1,
})
