"""Probe options are bound to the probe function's signature before anything runs."""

import pytest

from phenolab.config import ConfigError
from phenolab.experiments import get_experiment
from phenolab.experiments.base import experiments
from phenolab.probes import registry
from phenolab.probes.registry import bind_probe_options


def problems(name: str, options: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        bind_probe_options(name, options)
    return info.value.problems


def test_known_options_bind_and_come_back_as_a_new_dict():
    options = {"peaks": [1.0], "batch_size": 10}
    bound = bind_probe_options("frequency", options)
    assert bound == options and bound is not options
    assert bind_probe_options("parameters", {}) == {}


def test_unknown_option_suggests_the_closest_and_lists_the_allowed():
    [msg] = problems("frequency", {"peak": 3})
    assert msg == ("options.peak: unknown option of probe frequency; did you mean 'peaks'? "
                   "(allowed: batch_size, floor, max_peaks, output, peaks, spectra)")
    assert problems("parameters", {"x": 1}) == ["options.x: unknown option of probe parameters (it takes no options)"]


def test_model_task_and_the_recorders_reference_are_not_options():
    msgs = problems("condensation", {"model": 1, "task": 2, "reference": 3})
    assert [m.split(":")[0] for m in msgs] == ["options.model", "options.task", "options.reference"]
    assert "from the recorder" in msgs[2]
    assert "reference" not in problems("condensation", {"x": 1})[0].split("allowed:")[1]


def test_kwargs_probes_take_any_option_and_required_options_are_checked(monkeypatch):
    def free(model, task, *, required, **rest):
        return {}

    monkeypatch.setitem(registry._PROBES, "_free", free)
    assert bind_probe_options("_free", {"required": 1, "anything": 2}) == {"required": 1, "anything": 2}
    assert problems("_free", {"model": 1, "required": 1}) == [
        "options.model: probe _free gets model from the trainer; it is not an option"]
    assert problems("_free", {"anything": 2}) == ["options: probe _free needs the option(s) required"]


def test_resolve_names_the_probe_entry():
    with pytest.raises(ConfigError) as info:
        get_experiment("f-principle").resolve("quick", {"probes": [
            {"name": "frequency", "options": {"peaks": [1.0], "peak": 3}}, {"name": "outputs"}]})
    [item] = info.value.items
    assert item.path == "probes[0].options.peak" and "did you mean 'peaks'?" in item.reason


def test_every_catalog_preset_binds_its_probe_options():
    for experiment in experiments():
        for preset in ("quick", "full"):
            experiment.resolve(preset)
