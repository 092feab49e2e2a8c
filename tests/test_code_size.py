"""The RTL's functions and modules stay within issue 30's goals, by AST line counts.

The goals were reached (docs/PERFORMANCE.md, "Size of the RTL source"): no
``elaborate`` over 150 lines and no hand-written module over 400. They are
held here for every function and module, so that a change that grows one
past them fails and should add a part instead. The executor, the DMA tracker
and the interrupt remapper, which were split into parts, are held to the
figures their parts reached.
"""

from siov.tb import codesize

#: Issue 30's goals: the longest ``elaborate`` (and, here, any function) and the largest module.
LONGEST_ELABORATE = 150
LONGEST_FUNCTION = 150
LARGEST_MODULE = 400
#: The executor's composition and its sequencer's modules: their longest function and size.
EXECUTOR = {"rtl/cmd/executor.py": (90, 270), "rtl/cmd/sequencer.py": (40, 370),
            "rtl/cmd/move_states.py": (30, 185)}
#: The blocks split into parts (the DMA tracker, the interrupt remapper): their
#: longest function and largest module, at the figures reached.
PARTS = {"rtl/dma/": (96, 317), "rtl/irq/": (72, 296)}


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
    functions = codesize.functions()
    modules = dict((path, lines) for lines, path in codesize.modules())
    for path, (function_bound, module_bound) in EXECUTOR.items():
        lines, name, _ = next(r for r in functions if r[2] == path)
        assert lines <= function_bound, f"{name} in {path} is {lines} lines"
        assert modules[path] <= module_bound, f"{path} is {modules[path]} lines"


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
