"""The RTL's functions and modules stay within the sizes reached (issue 30), by AST line counts.

Bounds are the figures reached so far (docs/PERFORMANCE.md, "Size of the RTL
source"), not the goals (150 and 400 lines): they may only come down, each
time a block is split into parts. A change that grows a function or a module
past them fails here and should add a part instead.
"""

from siov.tb import codesize

#: The longest ``elaborate`` in rtl/ (Dispatcher.elaborate; the goal is 150).
LONGEST_ELABORATE = 188
#: The longest function of any name in rtl/ (Executor._sequence).
LONGEST_FUNCTION = 268
#: The largest hand-written module (rtl/cmd/executor.py; the goal is 400).
LARGEST_MODULE = 618
#: The executor after its split: its composition and its sequencer.
EXECUTOR = {"Executor.elaborate": 150, "Executor._sequence": 270}
#: The blocks split into parts (the DMA tracker, the interrupt remapper): their
#: longest function and largest module, at the figures reached (within the goals).
PARTS = {"rtl/dma/": (96, 317), "rtl/irq/": (87, 307)}


def test_longest_elaborate():
    lines, name, path = codesize.longest("elaborate")
    assert lines <= LONGEST_ELABORATE, f"{name} in {path} is {lines} lines"


def test_longest_function():
    lines, name, path = codesize.functions()[0]
    assert lines <= LONGEST_FUNCTION, f"{name} in {path} is {lines} lines"


def test_largest_module():
    lines, path = codesize.modules()[0]
    assert lines <= LARGEST_MODULE, f"{path} is {lines} lines"


def test_executor_stays_split():
    sizes = {name: lines for lines, name, path in codesize.functions() if path == "rtl/cmd/executor.py"}
    for name, bound in EXECUTOR.items():
        assert sizes[name] <= bound, f"{name} is {sizes[name]} lines"


def test_split_blocks_stay_split():
    for folder, (function_bound, module_bound) in PARTS.items():
        lines, name, path = next(r for r in codesize.functions() if r[2].startswith(folder))
        assert lines <= function_bound, f"{name} in {path} is {lines} lines"
        lines, path = next(r for r in codesize.modules() if r[1].startswith(folder))
        assert lines <= module_bound, f"{path} is {lines} lines"


def test_counts_lines_of_a_known_function(tmp_path):
    """The measure itself: a three-line method and a two-line module function, generated modules left out."""
    rtl = tmp_path / "rtl"
    rtl.mkdir()
    (rtl / "a.py").write_text("class A:\n    def elaborate(self):\n        x = 1\n        return x\n\n"
                              "def f():\n    pass\n")
    (rtl / "regmap.py").write_text("def huge():\n" + "    pass\n" * 50)
    assert codesize.functions(rtl) == [(3, "A.elaborate", "rtl/a.py"), (2, "f", "rtl/a.py")]
    assert codesize.longest("elaborate", rtl) == (3, "A.elaborate", "rtl/a.py")
    assert codesize.modules(rtl) == [(7, "rtl/a.py")]
