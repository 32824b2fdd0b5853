"""Triton Python-backend model: runs a generation's ONNX file with ONNX Runtime on CPU.

Copied verbatim into each numbered version directory next to ``model.onnx``. Triton has already checked
the input's name, dtype and shape against ``config.pbtxt``; dynamic batching may hand several requests
to one ``execute`` call, which concatenates them, runs the graph once and splits the outputs. The
packed code comes out of the ONNX graph itself, so it is identical to in-process ONNX Runtime.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """One instance per ``instance_group`` count; one ONNX Runtime session each."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        opts = ort.SessionOptions()
        threads = int(params.get("ort_intra_op_threads", "0") or 0)
        if threads > 0:  # 0: ONNX Runtime's default (every core)
            opts.intra_op_num_threads = threads
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, "image").as_numpy() for r in requests]
        try:
            outs = self.session.run(self.output_names, {self.input_name: np.concatenate(arrays)})
        except Exception as exc:  # noqa: BLE001 - fail these requests, keep the model serving
            err = pb_utils.TritonError(f"onnxruntime failed: {type(exc).__name__}: {exc}")
            return [pb_utils.InferenceResponse(error=err) for _ in requests]
        responses, start = [], 0
        for arr in arrays:
            stop = start + len(arr)
            tensors = [pb_utils.Tensor(name, out[start:stop]) for name, out in zip(self.output_names, outs)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start = stop
        return responses

    def finalize(self):
        self.session = None
