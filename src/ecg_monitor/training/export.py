"""ONNX export of the trained network and int8 static quantization with onnxruntime."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from ecg_monitor.detector.classifier import INPUT_NAMES
from ecg_monitor.training.model import BeatNet

OPSET = 17


def export_fp32(net: BeatNet, path: Path) -> Path:
    """Float ONNX graph with a dynamic batch axis; inputs ``morphology`` and ``rhythm``."""
    net = net.eval()
    a = net.arch
    example = (torch.zeros(1, a.channels, a.window), torch.zeros(1, a.rhythm))
    axes = {name: {0: "batch"} for name in (*INPUT_NAMES, "probabilities")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter warns that it is legacy
        torch.onnx.export(
            net, example, str(path), input_names=list(INPUT_NAMES), output_names=["probabilities"],
            dynamic_axes=axes, opset_version=OPSET, dynamo=False,
        )
    return path


class _Calibration(CalibrationDataReader):
    """Feeds training inputs (name -> array, batch first) to the calibrator in batches."""

    def __init__(self, inputs: dict[str, np.ndarray], batch: int = 256) -> None:
        n = len(next(iter(inputs.values())))
        self._batches = iter({k: v[i : i + batch].astype(np.float32) for k, v in inputs.items()}
                             for i in range(0, n, batch))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_int8(fp32_path: Path, int8_path: Path, calibration: dict[str, np.ndarray]) -> Path:
    """int8 weights (per channel) and activations, calibrated on the given inputs; names compacted."""
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(int8_path),
            _Calibration(calibration),
            quant_format=QuantFormat.QOperator, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv", "Gemm", "MatMul", "Relu", "MaxPool"],
        )
    compact_names(int8_path)
    return int8_path


def compact_names(path: Path) -> None:
    """Replace internal tensor and node names by short ones: they are half the file otherwise.

    The graph inputs and outputs keep their names; the float model keeps all of its names, which
    the saliency code uses to rebuild the torch network.
    """
    model = onnx.load(str(path))
    keep = {v.name for v in (*model.graph.input, *model.graph.output)}
    short: dict[str, str] = {}

    def rename(name: str) -> str:
        return name if not name or name in keep else short.setdefault(name, f"t{len(short)}")

    for t in model.graph.initializer:
        t.name = rename(t.name)
    for node in model.graph.node:
        node.name, node.doc_string = "", ""
        node.input[:] = [rename(x) for x in node.input]
        node.output[:] = [rename(x) for x in node.output]
    del model.graph.value_info[:]
    onnx.save(model, str(path))
