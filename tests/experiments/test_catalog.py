"""Every catalog entry is complete: claim, source, both presets valid, known probes."""

import pytest

from phenolab.config import ConfigError
from phenolab.experiments import experiments, get_experiment


def test_every_entry_is_complete():
    entries = experiments()
    assert {"f-principle", "f-principle-nd"} <= {e.name for e in entries}
    for e in entries:
        assert e.claim.endswith(".") and "arXiv" in e.source and e.title
        for preset in ("quick", "full"):
            cfg = e.resolve(preset)
            assert cfg.experiment == e.name and cfg.preset == preset and cfg.seeds


def test_unknown_experiment_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'f-principle'"):
        get_experiment("f-principel")


def test_unknown_probe_and_preset_are_config_errors():
    e = get_experiment("f-principle")
    with pytest.raises(ConfigError, match=r"probes\[0\].name: unknown probe 'nope'"):
        e.resolve("quick", {"probes": [{"name": "nope"}, {"name": "frequency"}, {"name": "outputs"}]})
    with pytest.raises(ConfigError, match="preset: must be one of quick, full"):
        e.resolve("medium")


def test_dropping_a_probe_the_analysis_needs_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^probes: f-principle needs the probe\(s\) frequency, outputs"):
        get_experiment("f-principle").resolve("quick", {"probes": [{"name": "loss"}]})
    with pytest.raises(ConfigError, match="seeds: list should have at least 1 item"):
        get_experiment("f-principle").resolve("quick", {"seeds": []})
