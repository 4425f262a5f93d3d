"""Validated configuration: ``params.yaml`` loaded into frozen pydantic models (``extra="forbid"``).

One module per ``params.yaml`` section; the sections are the only place hyperparameters and data
selection live, and the models carry no defaults of their own for them (a missing key is an
error, so every value has one home: the file). A wrong key or value fails at once with a
:class:`ConfigError` whose message names the key's dotted path
(``fetch.synthetic.regions.0.hemisphere``) and the allowed values or keys. Secrets never live
here: see :mod:`s2ssl.settings`.
"""

from s2ssl.config.calibrate import (
    CalibrateConfig,
    CalibrationTargets,
    PixelClassifierConfig,
    SceneClassifierConfig,
)
from s2ssl.config.common import (
    ConfigError,
    Fraction,
    PositiveInt,
    StrictModel,
    set_dotted,
)
from s2ssl.config.evaluate import EvaluateConfig
from s2ssl.config.fetch import (
    CroptypeSpec,
    FetchConfig,
    LabelRaster,
    LandcoverSpec,
    LocalDatasetSpec,
    LocalSource,
    RegionSpec,
    RetryConfig,
    SentinelHubSource,
    ShRegion,
    ShSeasonalSpec,
    ShSingleDateSpec,
    ShTimeSeriesSpec,
    SplitFractions,
    SyntheticSource,
    UnlabelledSpec,
)
from s2ssl.config.finetune import (
    BUILTIN_INITS,
    FINETUNE_TASKS,
    PUBLISHED_DIR,
    PUBLISHED_FORMATS,
    RANDOM_INITS,
    CroptypeFinetune,
    FinetuneConfig,
    FinetuneTask,
    ImageClassifierFinetune,
    Init,
    LandcoverFinetune,
    LinearProbeConfig,
    MultilabelFinetune,
    PublishedWeights,
    RegionTransferConfig,
    ScanProtocol,
    SceneFinetune,
    SupervisedTraining,
)
from s2ssl.config.params import Params, load_params, override_params, parse_params
from s2ssl.config.pretrain import (
    PRETRAIN_METHODS,
    AppearanceConfig,
    CSCLConfig,
    DenseConfig,
    MocoConfig,
    PretrainConfig,
    PretrainMethod,
    ProbeConfig,
)
from s2ssl.config.register import PromotionPolicy, RegisterConfig
from s2ssl.config.tune import SearchDimension, TuneConfig, TunePrunerConfig, TuneValue, tune_target
from s2ssl.config.validate import ValidateConfig

__all__ = [
    "BUILTIN_INITS",
    "FINETUNE_TASKS",
    "PRETRAIN_METHODS",
    "PUBLISHED_DIR",
    "PUBLISHED_FORMATS",
    "RANDOM_INITS",
    "AppearanceConfig",
    "CSCLConfig",
    "CalibrateConfig",
    "CalibrationTargets",
    "ConfigError",
    "CroptypeFinetune",
    "CroptypeSpec",
    "DenseConfig",
    "EvaluateConfig",
    "FetchConfig",
    "FinetuneConfig",
    "FinetuneTask",
    "Fraction",
    "ImageClassifierFinetune",
    "Init",
    "LabelRaster",
    "LandcoverFinetune",
    "LandcoverSpec",
    "LinearProbeConfig",
    "LocalDatasetSpec",
    "LocalSource",
    "MocoConfig",
    "MultilabelFinetune",
    "Params",
    "PixelClassifierConfig",
    "PositiveInt",
    "PretrainConfig",
    "PretrainMethod",
    "ProbeConfig",
    "PromotionPolicy",
    "PublishedWeights",
    "RegionSpec",
    "RegionTransferConfig",
    "RegisterConfig",
    "RetryConfig",
    "ScanProtocol",
    "SceneClassifierConfig",
    "SceneFinetune",
    "SearchDimension",
    "SentinelHubSource",
    "ShRegion",
    "ShSeasonalSpec",
    "ShSingleDateSpec",
    "ShTimeSeriesSpec",
    "SplitFractions",
    "StrictModel",
    "SupervisedTraining",
    "SyntheticSource",
    "TuneConfig",
    "TunePrunerConfig",
    "TuneValue",
    "UnlabelledSpec",
    "ValidateConfig",
    "load_params",
    "override_params",
    "parse_params",
    "set_dotted",
    "tune_target",
]
