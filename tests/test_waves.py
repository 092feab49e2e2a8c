"""`make waves` writes a waveform a viewer can open, with the design's port names in it."""

import pytest

from siov.tb import waves


@pytest.mark.sim
def test_waves_writes_a_readable_dump(capsys):
    assert waves.main(["test_identity"]) == 0
    out = capsys.readouterr().out
    path = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("[waves] waveform:"))
    if path.endswith(".vcd"):
        from vcd.reader import TokenKind, tokenize
        names, changes = set(), 0
        with open(path, "rb") as f:
            for tok in tokenize(f):
                if tok.kind is TokenKind.VAR:
                    names.add(tok.var.reference)
                elif tok.kind in (TokenKind.CHANGE_SCALAR, TokenKind.CHANGE_VECTOR):
                    changes += 1
        assert {"clk", "csr__awaddr", "csr__rdata"} <= names
        assert changes > 100
    else:
        with open(path, "rb") as f:
            assert f.read(1)  # FST: binary, non-empty


def test_unknown_test_is_a_clear_error(capsys):
    assert waves.main(["test_does_not_exist"]) == 2
    assert "No regression defines a test named 'test_does_not_exist'" in capsys.readouterr().err
