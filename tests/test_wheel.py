"""eventkit installed as a normal wheel, alone: it finds its configs, trains the default run, and
names the plugin distribution to install when a component of a built-in plugin is asked for.
Each built-in plugin builds as its own wheel carrying its configs and its entry point."""

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from eventkit.base.registry import BUILTIN_PLUGINS, get_registry
from eventkit.plugin.testing import tiny_run

REPO = Path(__file__).resolve().parent.parent
#: installed things the core-alone environment must not see (the core itself and the plugins'
#: own dependencies), by top-level name prefix
HIDDEN = ("eventkit", "_eventkit", "__editable__", "tonic", "h5py", "wandb", "nir", "norse", "snntorch")


def _wheel(source: Path, dest: Path) -> Path:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dest), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    return max(dest.glob("*.whl"), key=os.path.getmtime)


@pytest.fixture(scope="module")
def core_alone(tmp_path_factory):
    """A fresh venv holding the core wheel and, through a .pth file, the core's dependencies from
    this environment -- but no plugin distribution and none of the plugins' dependencies."""
    root = tmp_path_factory.mktemp("core_alone")
    wheel = _wheel(REPO, root / "dist")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    deps = root / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.lower().startswith(HIDDEN) and not entry.name.endswith(".pth"):
            (deps / entry.name).symlink_to(entry)
    (site / "dependencies.pth").write_text(f"{deps}\n")
    inst = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert inst.returncode == 0, inst.stderr[-3000:]
    return wheel, python, site, root


def _run(python, *args, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EVENTKIT_DISABLE_PLUGINS")}
    return subprocess.run([str(python), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def test_core_wheel_holds_the_core_and_its_configs_only(core_alone):
    wheel = core_alone[0]
    names = zipfile.ZipFile(wheel).namelist()
    assert "eventkit/conf/config.yaml" in names and "eventkit/conf/dataset/yinyang.yaml" in names
    assert not [n for n in names if n.startswith(("tests/", "examples/", "eventkit_")) or "__pycache__" in n]
    requires = metadata.Distribution.at(next(core_alone[2].glob("eventkit-*.dist-info"))).requires or []
    assert not [r for r in requires if r.split()[0].lower().startswith(("tonic", "h5py", "wandb"))], requires


@pytest.mark.slow  # compiles or installs afresh in a subprocess (tens of seconds)
def test_core_alone_runs_the_default_outside_the_checkout(core_alone):
    _, python, site, root = core_alone
    work = root / "elsewhere"
    work.mkdir(exist_ok=True)
    where = _run(python, "-c", "import eventkit.running.config as c; print(c.conf_dir())", cwd=work)
    assert where.stdout.strip() == str(site / "eventkit" / "conf"), where.stdout + where.stderr
    listed = _run(python, "-m", "eventkit", "--plugins", cwd=work)
    assert listed.returncode == 0 and "eventkit_" not in listed.stdout, listed.stdout + listed.stderr
    out = _run(python, "-m", "eventkit", *tiny_run(), f"hydra.run.dir={work / 'run'}", cwd=work)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((work / "run" / "summary.json").read_text())["epochs"] == 1


@pytest.mark.parametrize(
    "override, dist",
    [
        ("dataset=shd", "eventkit-tonic"),
        ("+experiment=ssc_delays", "eventkit-tonic"),
        ("target=loihi2", "eventkit-loihi2"),
        ("logger=wandb", "eventkit-wandb"),
    ],
)
def test_core_alone_names_the_plugin_to_install(core_alone, override, dist):
    _, python, _, root = core_alone
    out = _run(python, "-m", "eventkit", override, "--cfg", "job", cwd=root)
    errors = [line for line in out.stderr.splitlines() if line.startswith("eventkit: error:")]
    assert out.returncode == 2 and len(errors) == 1, out.stderr
    assert f"the {dist} plugin, which is not installed" in errors[0]
    assert f"Fix: pip install -e plugins/{dist.replace('-', '_')}" in errors[0]


def test_core_alone_registry_names_the_plugin_for_a_plugin_neuron(core_alone):
    _, python, _, root = core_alone
    out = _run(
        python,
        "-c",
        "from eventkit.base.registry import get_registry\n"
        "try:\n  get_registry().get('neuron', 'loihi_cuba')\nexcept Exception as e:\n  print(e)",
        cwd=root,
    )
    assert "comes with the eventkit-loihi2 plugin" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize("dist", sorted(BUILTIN_PLUGINS))
def test_builtin_plugin_table_matches_what_the_plugin_provides(dist, tmp_path):
    """The install hints cannot go stale: each built-in plugin registers exactly the components the
    table names, ships those experiment files, and builds as a wheel with its entry point."""
    package = dist.replace("-", "_")
    try:
        metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{dist} is not installed")
    registry = get_registry()
    table = BUILTIN_PLUGINS[dist]
    for kind, entries in registry.entries.items():
        provided = sorted(n for n, e in entries.items() if e.provider.startswith(dist + " "))
        assert provided == sorted(table.get(kind, ())), (kind, provided)
    conf = REPO / "plugins" / package / package / "conf"
    experiments = sorted(p.stem for p in (conf / "experiment").glob("*.yaml"))
    assert experiments == sorted(table.get("experiment", ())), experiments
    wheel = _wheel(REPO / "plugins" / package, tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert all(f"{package}/conf/{p.relative_to(conf)}" in names for p in conf.rglob("*.yaml"))
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert f"{package}.plugin" in zipfile.ZipFile(wheel).read(entry_points).decode()
