"""Debian programs that tests use as real clients (``lspci -F``, headless ``chromium``), installed
with apt-get when missing (not a test module).

CI machines start without them and reach only the package registries, so a
test that needs one installs Debian's package itself, once per machine: an
``flock`` keeps pytest-xdist's workers from running apt-get side by side, and
a worker that waited finds the program there. A failed install fails the
test with apt-get's own words, never skips it.
"""

import fcntl
import os
import shutil
import subprocess
import tempfile

import pytest

__all__ = ["debian_program", "run_command"]


def run_command(cmd, **kw):
    """``subprocess.run`` with text output captured; a program that cannot start is exit 127."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, **kw)
    except OSError as e:
        return subprocess.CompletedProcess(cmd, 127, "", str(e))


def debian_program(program, package):
    """Path of ``program``, installing Debian's ``package`` with apt-get when it is missing."""
    path = shutil.which(program)
    if path:
        return path
    log = []
    with open(os.path.join(tempfile.gettempdir(), f"siov-{package}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = shutil.which(program)
        if path:
            return path
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install = sudo + ["apt-get", "install", "-y", "--no-install-recommends", package]
        log.append(run_command(install, env=env))
        if log[-1].returncode:
            log.append(run_command(sudo + ["apt-get", "update"], env=env))
            log.append(run_command(install, env=env))
    path = shutil.which(program)
    if path is None:
        detail = "\n".join(f"$ {' '.join(r.args)} -> exit {r.returncode}\n{r.stderr[-2000:]}" for r in log)
        pytest.fail(f"{program} is missing and installing Debian's {package} with apt-get failed; install "
                    f"{package} to run these tests.\n{detail}", pytrace=False)
    return path
