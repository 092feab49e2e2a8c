"""Running host programs on the Verilated Device: the rtl backend of the Bus."""
