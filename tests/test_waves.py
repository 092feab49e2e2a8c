"""`make waves` writes a waveform a viewer can open, with the design's port names in it."""

import pytest

from siov.tb import waves


@pytest.mark.sim
def test_waves_writes_a_readable_dump(capsys):
    # A test of the ADI block: the flow is the same for every regression, and
    # its build is a quarter of the Device's.
    assert waves.main(["test_directed"]) == 0
    out = capsys.readouterr().out
    path = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("[waves] waveform:"))
    if path.endswith(".vcd"):
        # IEEE 1364 section 18 layout: declarations, $enddefinitions, then time
        # stamps (#t) and value changes. (Verilator names its top scope $rootio,
        # which GTKWave and Surfer accept but pyvcd's strict reader does not.)
        names, codes, changes, times, body = set(), set(), 0, 0, False
        with open(path) as f:
            for line in f:
                tok = line.split()
                if not tok:
                    continue
                if not body:
                    if tok[0] == "$var":
                        codes.add(tok[3])
                        names.add(tok[4])
                    body = tok[0] == "$enddefinitions"
                elif tok[0].startswith("#"):
                    times += 1
                elif tok[0][0] in "01xz" and tok[0][1:] in codes:
                    changes += 1
                elif tok[0][0] == "b" and len(tok) == 2 and tok[1] in codes:
                    changes += 1
        assert body, "no $enddefinitions"
        assert {"clk", "csr__awaddr", "csr__rdata"} <= names
        assert times > 10 and changes > 100
    else:
        with open(path, "rb") as f:
            assert f.read(1)  # FST: binary, non-empty


def test_unknown_test_is_a_clear_error(capsys):
    assert waves.main(["test_does_not_exist"]) == 2
    assert "No regression defines a test named 'test_does_not_exist'" in capsys.readouterr().err
