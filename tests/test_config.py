"""Every config option through Hydra's compose API, and the domain checks."""

import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from compnet.config import ConfigError, register, validate, validate_regions
from compnet.methods import plan

register("train")
register("regions")


CHECKS = {"train": validate, "regions": validate_regions}


def make(*overrides: str, command: str = "train"):
    with initialize_config_module(config_module="compnet.conf", version_base="1.3"):
        return compose(command, overrides=list(overrides))


def test_paper_defaults():
    cfg = make()
    assert (cfg.trials, cfg.depth, cfg.epochs, cfg.lr, cfg.points) == (30, 5, 1000, 1e-3, 500)
    assert (cfg.target.name, cfg.init.name, cfg.regime.name) == ("x3", "manifold", "auto")
    assert [cfg.regime[k] for k in ("pretrain_epochs", "finetune_epochs", "direct_epochs")] == [1000] * 3
    assert (cfg.init.peak_low, cfg.init.peak_high) == (0.25, 0.75)
    assert (cfg.model.peaks.value, cfg.model.s1.value, cfg.model.offset) == ("clamp", "trainable", True)
    validate(cfg)
    (cell,) = plan(cfg)
    assert (cell.method, cell.regime) == ("enforced", "pretrain")


@pytest.mark.parametrize(
    "init, regime, method",
    [
        ("kaiming", "auto", "default"),
        ("raai", "auto", "raai"),
        ("rai", "auto", "rai"),
        ("manifold", "direct", "no_pretraining"),
        ("compositional", "auto", "not_enforced"),
        ("manifold", "pretrain", "enforced"),
    ],
)
def test_methods_from_init_and_regime(init, regime, method):
    cfg = make(f"init={init}", f"regime={regime}")
    validate(cfg)
    assert plan(cfg)[0].method == method


@pytest.mark.parametrize("target", ["x2", "x3", "x11", "sin", "tanh"])
def test_targets(target):
    assert make(f"target={target}").target.name == target


def test_short_overrides():
    cfg = make("trials=3", "depth=7", "seed=11", "epochs=12", "lr=0.01", "points=40")
    assert (cfg.trials, cfg.depth, cfg.seed, cfg.lr, cfg.points) == (3, 7, 11, 0.01, 40)
    assert [cfg.regime[k] for k in ("pretrain_epochs", "finetune_epochs", "direct_epochs")] == [12] * 3


def test_per_stage_epochs_override_the_shared_one():
    cfg = make("epochs=10", "regime.direct_epochs=2000")
    assert (cfg.regime.pretrain_epochs, cfg.regime.direct_epochs) == (10, 2000)


def test_model_settings():
    cfg = make("model.peaks=sigmoid", "model.s1=tied", "model.offset=false", "dtype=float64")
    assert (cfg.model.peaks.value, cfg.model.s1.value, cfg.model.offset, cfg.dtype.value) == (
        "sigmoid",
        "tied",
        False,
        "float64",
    )
    cfg = make("init.peak_low=0.1", "init.peak_high=0.9", "init=raai", "init.raai_k=0.5", "init.raai_sigma_w2=2.0")
    assert (cfg.init.peak_low, cfg.init.raai_k, cfg.init.raai_sigma_w2) == (0.1, 0.5, 2.0)


@pytest.mark.parametrize(
    "name, targets, n",
    [("table1", ["x3", "x11"], 10), ("table2", ["sin", "tanh"], 10), ("table3", ["x3", "x11", "sin", "tanh"], 8)],
)
def test_experiments(name, targets, n):
    cfg = make(f"experiment={name}")
    validate(cfg)
    assert list(cfg.experiment.targets) == targets
    assert len(plan(cfg)) == n
    if name == "table3":
        assert (cfg.points, cfg.test_points) == (10, 10)


def test_user_target_keys():
    """target=custom and target=file are options of the group; their keys are typed by the schema."""
    cfg = make("target=custom", "target.fn=mod:f", "target.domain=[-1,2]", "target.sign=-1", "target.dim=1")
    assert (cfg.target.name, cfg.target.fn, list(cfg.target.domain), cfg.target.sign) == (
        "custom",
        "mod:f",
        [-1, 2],
        "-1",
    )
    assert isinstance(cfg.target.domain[0], float) and cfg.target.normalise is True
    cfg = make("target=file", "target.path=data/p.csv", "target.normalise=false")
    assert (cfg.target.path, cfg.target.fn, cfg.target.dim, cfg.target.domain) == ("data/p.csv", None, None, None)


@pytest.mark.parametrize("override", ["target.dim=two", "target.domain=[a,b]", "target.normalise=maybe"])
def test_user_target_wrong_type_fails(override):
    with pytest.raises(ConfigCompositionException):
        make("target=custom", override)


@pytest.mark.parametrize(
    "override", ["trails=3", "model.depth=3", "init.peak=0.3", "target.fnn=mod:f", "target.domian=[0,1]"]
)
def test_unknown_key_fails(override):
    with pytest.raises(ConfigCompositionException):
        make(override)


@pytest.mark.parametrize(
    "override", ["depth=five", "lr=fast", "model.peaks=sigmoidd", "model.offset=maybe", "dtype=float16"]
)
def test_wrong_type_fails(override):
    with pytest.raises(ConfigCompositionException):
        make(override)


@pytest.mark.parametrize(
    "group, valid", [("target", "x11"), ("init", "raai"), ("regime", "pretrain"), ("experiment", "table1")]
)
def test_unknown_group_option_lists_valid_names(group, valid):
    with pytest.raises(ConfigCompositionException) as e:
        make(f"{group}=nope")
    assert valid in str(e.value)


@pytest.mark.parametrize(
    "command, override, needle",
    [
        ("train", "depth=0", "depth=0"),
        ("train", "trials=0", "trials=0"),
        ("train", "points=1", "points=1"),
        ("train", "lr=0", "lr=0"),
        ("train", "lr=-0.001", "lr=-0.001"),
        ("train", "epochs=-1", "=-1"),
        ("train", "regime.finetune_epochs=-5", "regime.finetune_epochs=-5"),
        ("train", "init.peak_low=0", "init.peak_low=0"),
        ("train", "init.peak_high=1.5", "init.peak_high=1.5"),
        ("train", "init.peak_low=0.8", "init.peak_low=0.8 > init.peak_high=0.75"),
        ("train", "init.raai_k=2", "init.raai_k=2"),
        ("train", "init.raai_sigma_w2=-1", "init.raai_sigma_w2=-1"),
        ("train", "init.peak_low=0.001 init.peak_high=0.005", "[0.01, 0.99]"),
        ("train", "seed=-1", "seed=-1"),
        ("train", "trial_start=-1", "trial_start=-1: need trial_start >= 0"),
        ("train", "engine=fused device=cuda", "engine=fused runs on the CPU only"),
        ("train", "test_points=-1", "test_points=-1"),
        ("train", "regions_every=-1", "regions_every=-1"),
        ("train", "experiment.targets=[x3,x4]", "'x4'"),
        ("train", "experiment.methods=[enforced,best]", "'best'"),
        ("train", "regime=pretrain init=kaiming", "init=kaiming"),
        ("regions", "depths=[0,3]", "depths=[0, 3]"),
        ("regions", "draws=0", "draws=0"),
        ("regions", "lo=1 hi=0", "lo=1.0"),
        ("regions", "seed=-1", "seed=-1"),
        ("regions", "init.raai_k=2", "init.raai_k=2"),
        ("regions", "init.raai_sigma_w2=-1", "init.raai_sigma_w2=-1"),
        ("regions", "init.peak_low=0.9", "init.peak_low=0.9 > init.peak_high=0.75"),
        ("regions", "inits=[kaiming,he]", "'he'"),
    ],
)
def test_domain_checks(command, override, needle):
    cfg = make(*override.split(), command=command)
    with pytest.raises(ConfigError) as e:
        CHECKS[command](cfg)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "overrides",
    [
        "model.peaks=sigmoid",  # no clamp
        "init=kaiming",  # no peaks drawn
        "init=manifold regime=direct",  # peaks encoded, never pretrained, so never clamped
        "experiment=table1 experiment.methods=[default,no_pretraining]",
    ],
)
def test_peaks_outside_the_clamp_are_fine_where_nothing_clamps(overrides):
    validate(make(*overrides.split(), "init.peak_low=0.001", "init.peak_high=0.995"))


def test_resolved_config_is_plain_yaml():
    """`--cfg job` prints this: every interpolation resolves."""
    text = OmegaConf.to_yaml(make("epochs=3"), resolve=True)
    assert "pretrain_epochs: 3" in text
