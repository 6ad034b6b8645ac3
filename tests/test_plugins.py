"""Plugins (`phenolab.plugins`): experiments and probes from a researcher's own package.

The README's "Your own experiment" example is `tests/plugins/example_plugin/` (checked equal):
installed as a distribution with an entry point and run through the command line as the README
says, with --plugin FILE on the local executor's workers and a broken plugin in the same
subprocess; in this process, $PHENOLAB_PLUGINS and names taken twice."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from phenolab import plugins
from phenolab.experiments import base as experiment_registry
from phenolab.probes import registry as probe_registry

from cli_call import call

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
EXAMPLE = ROOT / "tests" / "plugins" / "example_plugin"


# ------------------------------------------------------------------------------------ helpers
def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Your own experiment\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)


@pytest.fixture()
def isolated(monkeypatch):
    """Load plugins in this process and forget them afterwards: the registries, the loader's state
    and the imported plugin modules are restored, $PHENOLAB_PLUGINS is unset."""
    experiment_registry.experiments()
    probe_registry.probe_names()  # the built-ins first: they stay
    monkeypatch.delenv(plugins.ENV_VAR, raising=False)
    saved = (dict(experiment_registry._REGISTRY), dict(probe_registry._PROBES), set(probe_registry._NEEDS_REFERENCE),
             dict(plugins._loaded), dict(plugins._failed), plugins._env_seen, dict(plugins._provided), set(sys.modules))
    yield
    experiment_registry._REGISTRY.clear()
    experiment_registry._REGISTRY.update(saved[0])
    probe_registry._PROBES.clear()
    probe_registry._PROBES.update(saved[1])
    probe_registry._NEEDS_REFERENCE.clear()
    probe_registry._NEEDS_REFERENCE.update(saved[2])
    for target, value in zip((plugins._loaded, plugins._failed, plugins._provided), (saved[3], saved[4], saved[6])):
        target.clear()
        target.update(value)
    plugins._env_seen = saved[5]
    for name in set(sys.modules) - saved[7]:
        del sys.modules[name]


# -------------------------------------------------------------------------- the README example
def test_readme_example_is_the_tested_plugin():
    section = readme_section()
    assert blocks(section, "python") == [(EXAMPLE / "my_phenomena.py").read_text()]
    assert blocks(section, "toml") == [(EXAMPLE / "pyproject.toml").read_text()]


DRIVER = """
import json, sys
from phenolab import cli
for i, args in enumerate(json.loads(sys.argv[1])):
    for stream in (sys.stdout, sys.stderr):
        print(f"@@@ command {i}", file=stream, flush=True)
    sys.argv = ["phenolab", *args]
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    sys.stderr.flush()
    print(f"@@@ exit {code}", flush=True)
"""

EXTRA_PROBE = """
from phenolab.probes import register_probe


@register_probe("weight_count")
def weight_count(model, task):
    return {"value": float(sum(p.numel() for p in model.parameters()))}
"""


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """The example pip-installed (its entry point) into a target folder, then, in one subprocess
    (one start-up for all: each pays for importing torch and the catalog), the `phenolab` lines of
    the README block as written, then `--plugin FILE run ... --jobs 2` and a broken `--plugin`.
    Returns per command: (exit code, stdout, stderr), and the temporary folder."""
    tmp = tmp_path_factory.mktemp("plugin")
    pkg, site, work = tmp / "pkg", tmp / "site", tmp / "work"
    pkg.mkdir()
    work.mkdir()
    for name in ("my_phenomena.py", "pyproject.toml"):
        (pkg / name).write_text((EXAMPLE / name).read_text())
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                              "--quiet", "--target", str(site), str(pkg)], capture_output=True, text=True, timeout=120)
    assert install.returncode == 0, install.stderr
    assert (site / "my_phenomena.py").is_file()
    (work / "extra_probe.py").write_text(EXTRA_PROBE)
    (work / "broken_lab.py").write_text("import no_such_package_here\n")

    lines = [line.split("#")[0].strip() for line in blocks(readme_section(), "bash")[0].splitlines()]
    commands = [shlex.split(line)[1:] for line in lines if line.startswith("phenolab ")]
    assert [c[0] for c in commands] == ["list", "run", "sweep", "report"]
    commands += [
        ["--plugin", "extra_probe.py", "run", "sines-fit", "--jobs", "2",
         "probes=[{name: loss}, {name: output_rms}, {name: weight_count}]"],
        ["--plugin", "broken_lab.py", "list"],
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("PHENOLAB_PLUGINS", "PHENOLAB_STORE", "PYTHONPATH")}
    env.update(PYTHONPATH=os.pathsep.join([str(site), str(SRC)]), PHENOLAB_STORE=str(tmp / "store" / "phenolab.sqlite"))
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(commands)], env=env, cwd=work,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    outs = done.stdout.split("@@@ command ")[1:]
    errs = done.stderr.split("@@@ command ")[1:]
    results = {}
    for i, (o, e) in enumerate(zip(outs, errs)):
        body, code = o.split("\n", 1)[1].rsplit("@@@ exit ", 1)
        results[i] = (int(code), body, e.split("\n", 1)[1])
    assert len(results) == len(commands), done.stdout[-3000:]
    return results, tmp


def test_list_shows_the_installed_plugin_and_its_origin(session):
    code, out, err = session[0][0]
    assert code == 0, err
    assert "plugin: my-phenomena" in next(line for line in out.splitlines() if "sines-fit" in line)
    assert "plugin:" not in next(line for line in out.splitlines() if "f-principle " in line)


def test_run_judges_the_plugin_experiment(session):
    code, out, err = session[0][1]
    assert code == 0, (out, err)
    assert "sines-fit: PASS" in out and "run 1;" in out


def test_sweep_trains_in_worker_processes_that_load_the_plugin(session):
    """The default executor of `sweep` is local: fresh worker processes, which find the
    plugin's probe through its entry point."""
    code, out, err = session[0][2]
    assert code == 0, (out, err)
    assert out.count("PASS") == 2 and "model.width=16" in out


def test_report_writes_the_plugin_runs_page(session):
    (code, out, err), tmp = session[0][3], session[1]
    assert code == 0, err
    page = tmp / "store" / "runs" / "1" / "report.html"
    assert f"report: {page}" in out and "final / initial training loss" in page.read_text()


def test_plugin_option_reaches_the_local_executors_workers(session):
    """--plugin FILE sets $PHENOLAB_PLUGINS, so the worker (a fresh process) has the file's probe."""
    code, out, err = session[0][4]
    assert code == 0, (out, err)
    assert "sines-fit: PASS" in out
    from phenolab.store import Store

    with Store(session[1] / "store" / "phenolab.sqlite", readonly=True) as st:
        train = st.list_runs(kind="train", limit=1)[0]
        names = set(st.metrics(train["id"])["name"])
    assert {"weight_count/value", "output_rms/train"} <= names


def test_broken_plugin_is_one_line_exit_2(session):
    code, out, err = session[0][5]
    assert code == 2
    path = session[1] / "work" / "broken_lab.py"
    assert err.strip() == (f"error: plugin '{path}' failed to load: "
                           "ModuleNotFoundError: No module named 'no_such_package_here'")
    assert "Traceback" not in out + err


# ------------------------------------------------------------------ $PHENOLAB_PLUGINS, --plugin
def test_env_var_names_a_module_file(isolated, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv(plugins.ENV_VAR, str(EXAMPLE / "my_phenomena.py"))
    code, out, err = call(capsys, "list")
    assert code == 0, err
    assert "plugin: my_phenomena" in next(line for line in out.splitlines() if "sines-fit" in line)
    assert "plugin:" not in next(line for line in out.splitlines() if "f-principle " in line)
    assert "output_rms" in probe_registry.probe_names()
    assert plugins.provided_by("probe", "output_rms").target == str(EXAMPLE / "my_phenomena.py")
    assert plugins.provided_by("experiment", "f-principle") is None
    cfg = experiment_registry.get_experiment("sines-fit").resolve("quick", {"seeds": [3]})
    assert cfg.check.max_loss_ratio == 0.7 and cfg.seeds == [3]


def test_env_var_names_an_importable_module(isolated, monkeypatch, tmp_path):
    (tmp_path / "lab_probes.py").write_text(
        "from phenolab.probes import register_probe\n\n"
        "@register_probe('always_one')\ndef always_one(model, task):\n    return {'value': 1.0}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(plugins.ENV_VAR, " lab_probes , ")
    assert "always_one" in probe_registry.probe_names()
    assert [p.label for p in plugins.loaded_plugins()] == ["plugin: lab_probes"]


def test_add_plugins_makes_files_absolute_once(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(plugins.ENV_VAR, "some.module")
    plugins.add_plugins(["my_lab.py", "some.module", "sub/x.py", "my_lab.py"])
    assert os.environ[plugins.ENV_VAR].split(",") == ["some.module", str(tmp_path / "my_lab.py"),
                                                      str(tmp_path / "sub" / "x.py")]


# -------------------------------------------------------------------------------- errors
def test_plugin_taking_a_catalog_name_names_both(isolated, capsys, monkeypatch, tmp_path):
    clash = tmp_path / "clash_lab.py"
    clash.write_text((EXAMPLE / "my_phenomena.py").read_text().replace('name="sines-fit"', 'name="condensation"'))
    monkeypatch.setenv(plugins.ENV_VAR, str(clash))
    code, out, err = call(capsys, "list")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert (f"experiment 'condensation' is registered twice: by phenolab.experiments.condensation and by "
            f"plugin '{clash}'") in err


def test_two_plugins_with_one_probe_name_name_both(isolated, capsys, monkeypatch, tmp_path):
    for name in ("lab_a", "lab_b"):
        (tmp_path / f"{name}.py").write_text("from phenolab.probes import register_probe\n\n"
                                             "@register_probe('mine')\ndef mine(model, task):\n    return {}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(plugins.ENV_VAR, "lab_a,lab_b")
    code, out, err = call(capsys, "run", "f-principle", "--store", str(tmp_path / "s.sqlite"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert ("probe 'mine' is registered twice: by plugin 'lab_a' (module) and by plugin 'lab_b' (module)") in err
    assert not (tmp_path / "s.sqlite").exists()
