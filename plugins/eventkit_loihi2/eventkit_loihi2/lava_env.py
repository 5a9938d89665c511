"""A separate Python environment that holds Lava (lava-nc 0.10.0 + lava-dl 0.6.0).

Why separate: the last Lava releases declare Python >=3.10,<3.11 and pin torch 2.3, while eventkit
runs on newer Pythons and torch. Lava therefore lives in its own virtual environment and eventkit
talks to it only through files (model.net, samples.npz -> lava_voltages.npz) and a subprocess
(:mod:`eventkit_loihi2.lava_runner`). A Loihi 2 user's own Lava environment (with the non-public
lava-loihi) can be pointed at the same way.

Where the environment lives: ``$EVENTKIT_LAVA_ENV``, default ``~/.cache/eventkit/lava-env``.

Which interpreter builds it (first that exists):
  1. ``--python`` / the target's ``lava_python`` / ``$EVENTKIT_LAVA_PYTHON``
  2. ``python3.10`` on PATH
  3. pyenv: ``$PYENV_ROOT`` (or ``~/.pyenv``) ``/versions/3.10.*/bin/python3.10``
  4. fallback: the running interpreter when it is 3.11 or newer. lava-nc and lava-dl are
     installed without their ``requires-python`` check (then their declared dependencies
     normally, so pip picks versions for this Python), and one line of lava is patched:
     ``lava/magma/compiler/var_model.py`` uses ``x: ByteEncoder = ByteEncoder()`` as a dataclass
     field default, which Python >=3.11 rejects (mutable default); the patch rewrites these to
     ``field(default_factory=ByteEncoder)``. Nothing else in Lava is changed.

An interpreter given explicitly (``lava_python`` / ``$EVENTKIT_LAVA_PYTHON``) that can already
import lava is used as is, without building anything.

Command line::

    python -m eventkit_loihi2.lava_env build [--python PATH] [--env DIR] [--force]
    python -m eventkit_loihi2.lava_env status
    python -m eventkit_loihi2.lava_env python     # prints the interpreter to run lava_runner with
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

LAVA_REQUIREMENTS = ("lava-nc==0.10.0", "lava-dl==0.6.0")
READY_MARKER = "eventkit-lava-ready.json"
_PROBE = (
    "import json, sys, importlib.metadata as m;"
    "import lava.lib.dl.netx.hdf5, lava.magma.core.run_configs;"
    "print(json.dumps({'python': sys.version.split()[0],"
    " 'lava-nc': m.version('lava-nc'), 'lava-dl': m.version('lava-dl')}))"
)


def env_dir(env: str | os.PathLike | None = None) -> Path:
    """The cached environment directory (``$EVENTKIT_LAVA_ENV`` or ``~/.cache/eventkit/lava-env``)."""
    if env:
        return Path(env).expanduser()
    if os.environ.get("EVENTKIT_LAVA_ENV"):
        return Path(os.environ["EVENTKIT_LAVA_ENV"]).expanduser()
    return Path.home() / ".cache" / "eventkit" / "lava-env"


def env_python(env: str | os.PathLike | None = None) -> Path:
    return env_dir(env) / "bin" / "python"


def python_version(python: str | os.PathLike) -> tuple[int, int] | None:
    """(major, minor) of an interpreter, or None if it does not run."""
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    major, minor = out.stdout.split()
    return int(major), int(minor)


def probe_lava(python: str | os.PathLike) -> dict | None:
    """Versions if ``python`` can import lava + lava-dl's netx, else None."""
    try:
        out = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def find_base_python(explicit: str | None = None) -> tuple[str, tuple[int, int]]:
    """The interpreter to build the Lava environment from (see module docstring for the order)."""
    given = explicit or os.environ.get("EVENTKIT_LAVA_PYTHON")
    if given:
        version = python_version(given)
        if version is None:
            raise ValueError(
                f"lava_python / EVENTKIT_LAVA_PYTHON = {given!r} is not a runnable Python "
                "interpreter; point it at a Python 3.10 executable or unset it"
            )
        return given, version
    candidates = []
    on_path = shutil.which("python3.10")
    if on_path:
        candidates.append(on_path)
    roots = [os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv"), "/root/.pyenv"]
    for root in filter(None, roots):
        candidates += sorted(glob.glob(os.path.join(root, "versions", "3.10*", "bin", "python3.10")), reverse=True)
    for cand in candidates:
        version = python_version(cand)
        if version == (3, 10):
            return cand, version
    if sys.version_info >= (3, 11):
        return sys.executable, (sys.version_info[0], sys.version_info[1])
    raise ValueError(
        "no Python interpreter for Lava found: install Python 3.10 (e.g. `pyenv install 3.10`) "
        "or set EVENTKIT_LAVA_PYTHON to one"
    )


def patch_var_model(site_packages: Path) -> bool:
    """Make lava-nc 0.10.0 importable on Python >= 3.11 (see module docstring). Returns True if
    the file was changed."""
    path = site_packages / "lava" / "magma" / "compiler" / "var_model.py"
    text = path.read_text()
    new = re.sub(r"(\w+): ByteEncoder = ByteEncoder\(\)", r"\1: ByteEncoder = field(default_factory=ByteEncoder)", text)
    if new == text:
        return False
    new = new.replace(
        "from dataclasses import dataclass, InitVar", "from dataclasses import dataclass, InitVar, field", 1
    )
    path.write_text(new)
    return True


def _run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def build(python: str | None = None, env: str | None = None, force: bool = False) -> Path:
    """Create (or reuse) the Lava environment; returns its interpreter. Idempotent."""
    target = env_dir(env)
    py = env_python(env)
    if not force and (target / READY_MARKER).exists() and probe_lava(py):
        print(f"Lava environment ready at {target}")
        return py
    base, version = find_base_python(python)
    print(f"building the Lava environment at {target} from {base} (Python {version[0]}.{version[1]})", flush=True)
    if force and target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _run([base, "-m", "venv", str(target)])
    _run([str(py), "-m", "pip", "install", "--upgrade", "pip"])
    pip = [str(py), "-m", "pip", "install"]
    if version >= (3, 11):
        # lava itself without its requires-python check, then its declared dependencies with
        # the check on (so pip still picks versions that support this Python)
        _run(pip + ["--ignore-requires-python", "--no-deps"] + list(LAVA_REQUIREMENTS))
        deps = subprocess.run(
            [
                str(py),
                "-c",
                "import importlib.metadata as m; " "print('\\n'.join(m.requires('lava-nc') + m.requires('lava-dl')))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
        _run(pip + [d.strip() for d in deps if d.strip() and "lava-nc" not in d])
    else:
        _run(pip + list(LAVA_REQUIREMENTS))
    if version >= (3, 11):
        site = Path(
            subprocess.run(
                [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        if patch_var_model(site):
            print("patched lava/magma/compiler/var_model.py for Python >= 3.11")
    versions = probe_lava(py)
    if versions is None:
        raise RuntimeError(
            f"the Lava environment at {target} was built but `import lava.lib.dl.netx` fails "
            f"there; run `{py} -c 'import lava.lib.dl.netx'` to see why"
        )
    (target / READY_MARKER).write_text(json.dumps(dict(versions, base_python=base), indent=1))
    print(f"Lava environment ready: {versions}")
    return py


def resolve_lava_python(explicit: str | None = None, env: str | None = None) -> str | None:
    """The interpreter to run :mod:`eventkit_loihi2.lava_runner` with, or None if there is none.

    Order: an explicit interpreter that imports lava; the built cached environment; the running
    interpreter if lava is importable here.
    """
    given = explicit or os.environ.get("EVENTKIT_LAVA_PYTHON")
    if given and probe_lava(given):
        return given
    py = env_python(env)
    if (env_dir(env) / READY_MARKER).exists() and py.exists():
        return str(py)
    try:
        import lava.lib.dl.netx.hdf5  # noqa: F401
    except Exception:
        return None
    return sys.executable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eventkit_loihi2.lava_env", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="create the Lava environment (idempotent)")
    b.add_argument("--python", help="interpreter to build from (default: search, see docs)")
    b.add_argument("--env", help="environment directory (default $EVENTKIT_LAVA_ENV or " "~/.cache/eventkit/lava-env)")
    b.add_argument("--force", action="store_true", help="delete and rebuild")
    s = sub.add_parser("status", help="say whether a Lava interpreter is available")
    s.add_argument("--env")
    p = sub.add_parser("python", help="print the Lava interpreter path (exit 1 if none)")
    p.add_argument("--env")
    args = parser.parse_args(argv)
    if args.cmd == "build":
        build(args.python, args.env, args.force)
        return 0
    py = resolve_lava_python(env=args.env)
    if args.cmd == "python":
        if py is None:
            return 1
        print(py)
        return 0
    if py is None:
        print(
            f"no Lava environment (looked at {env_dir(args.env)}); "
            "build one with `python -m eventkit_loihi2.lava_env build`"
        )
        return 1
    print(json.dumps(dict(probe_lava(py) or {}, interpreter=py), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
