"""Testbench of the interrupt remapping unit: pyuvm environment, tests and formal harnesses."""
