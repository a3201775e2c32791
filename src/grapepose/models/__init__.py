"""The GRAPE network (`GrapeNet`), its builder and checkpoints (docs/DESIGN.md, Network).

Example:
    >>> from grapepose.models import build_model, load_model, save_model
    >>> model = build_model("crowdpose_w32")                      # untrained, 30,911,291 parameters
    >>> model = load_model("model_crowdpose.pth.tar", preset="crowdpose_w32")   # the authors' weights
    >>> save_model(model, "crowdpose_w32.safetensors")
"""

from grapepose.models.backbone import HRNetBackbone
from grapepose.models.blocks import AdaptiveBlock, BasicBlock, ConvBNReLU, Head
from grapepose.models.build import build_model, model_config_of, model_metadata
from grapepose.models.checkpoint import (
    config_from_json,
    init_backbone_from_imagenet,
    load_model,
    load_state_dict_strict,
    read_checkpoint,
    read_model_info,
    read_torch_file,
    save_model,
)
from grapepose.models.grape import GLOBAL_CONTEXT_MODULES, GrapeNet, GrapeOutput
from grapepose.models.transformer import TransformerDecoder, TransformerEncoder, sine_position_encoding

__all__ = [
    "AdaptiveBlock", "BasicBlock", "ConvBNReLU", "GLOBAL_CONTEXT_MODULES", "GrapeNet", "GrapeOutput",
    "HRNetBackbone", "Head", "TransformerDecoder", "TransformerEncoder", "build_model", "config_from_json",
    "init_backbone_from_imagenet", "load_model", "load_state_dict_strict", "model_config_of", "model_metadata",
    "read_checkpoint", "read_model_info", "read_torch_file", "save_model", "sine_position_encoding",
]  # fmt: skip
