"""The comparison's contenders are built as documented."""

from dataclasses import replace

import pytest

from rnlib.compare import ABLATIONS, BASELINES, _config_for
from rnlib.runs import make_model
from rnlib.train import PRESETS


@pytest.mark.parametrize("name,entry", list(BASELINES.items()) + list(ABLATIONS.items()))
def test_every_contender_builds_with_the_preset(name, entry):
    config = _config_for(PRESETS["cpu-quick"], entry)
    model = make_model(config)
    if entry.refinenet_family:
        assert config.model_options["widths"] == (64, 64)
        decoder = model.decoder
        if name == "without CRP":
            assert all(len(b.pool.convs) == 0 for b in decoder.blocks)
        if name == "without RCUs":
            assert all(len(b.out) == 0 for b in decoder.blocks)
        if name.endswith("cascade"):
            assert len(decoder.blocks) == int(name[0]) if name[0].isdigit() else 4
    else:
        assert config.model_options == {}


def test_baselines_share_data_and_budget():
    base = replace(PRESETS["cpu-quick"], seed=3)
    configs = [_config_for(base, e) for e in BASELINES.values()]
    assert len({(c.dataset, str(c.data_options), c.time_budget_s, c.seed, c.lr) for c in configs}) == 1
