#!/usr/bin/python3
"""Small broken and unsupported ONNX models for tests/cli/onnx.sh, written
with Debian's python3-onnx (onnx.helper), once:

    /usr/bin/python3 tools/gen_onnx_bad.py tests/data/onnx

Each is a 1x4x4 -> 3 classifier (Conv 2@3x3, Relu, Flatten, Gemm) broken
in one way:
    ok.onnx            nothing wrong (the reference the others differ from)
    opset3.onnx        declares opset 3 (older than loom reads)
    opset99.onnx       declares opset 99 (newer than loom reads)
    unknown_op.onnx    a node of operator "Frobnicate"
    no_init.onnx       the Gemm's weight is neither an initializer nor made by a node
    shape.onnx         the Gemm's weight has 7 inputs, the flattened conv gives 8
    cycle.onnx         two nodes that read each other's output
    asym_pad.onnx      an AveragePool (padding not counted) pads top/left by 1 but bottom/right by 0
    dyn_input.onnx     the input's height is symbolic
    reshape_batch.onnx a Reshape to [-1, 4] of 8 values per sample: the batch would merge with them
    softmax.onnx       nothing wrong, but it ends in a Softmax (as many exported classifiers do)
The truncated file the tests also need they make themselves (head -c).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def model(name, opset=13, nodes=None, inits=None, in_shape=("N", 1, 4, 4)):
    rng = np.random.default_rng(7)
    w = numpy_helper.from_array(rng.standard_normal((2, 1, 3, 3)).astype(np.float32), "conv_w")
    b = numpy_helper.from_array(np.zeros(2, np.float32), "conv_b")
    gw = numpy_helper.from_array(rng.standard_normal((3, 8)).astype(np.float32), "fc_w")
    gb = numpy_helper.from_array(np.zeros(3, np.float32), "fc_b")
    default_nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], name="conv", pads=[0, 0, 0, 0]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], name="fc", transB=1),
    ]
    g = helper.make_graph(nodes or default_nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
                          inits if inits is not None else [w, b, gw, gb])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="loom tests")
    m.ir_version = 8
    return m, (w, b, gw, gb)


def main(outdir):
    os.makedirs(outdir, exist_ok=True)
    out = {}
    m, (w, b, gw, gb) = model("ok")
    onnx.checker.check_model(m, full_check=True)
    out["ok"] = m
    out["opset3"] = model("opset3", opset=3)[0]
    out["opset99"] = model("opset99", opset=99)[0]
    n = list(m.graph.node)
    out["unknown_op"] = model("unknown_op", nodes=[n[0], helper.make_node("Frobnicate", ["c"], ["r"], name="frob"), n[2], n[3]])[0]
    out["no_init"] = model("no_init", inits=[w, b, gb])[0]
    bad_w = numpy_helper.from_array(np.ones((3, 7), np.float32), "fc_w")
    out["shape"] = model("shape", inits=[w, b, bad_w, gb])[0]
    cyc = [helper.make_node("Relu", ["r2"], ["r1"], name="relu_a"), helper.make_node("Relu", ["r1"], ["r2"], name="relu_b"),
           n[0], helper.make_node("Add", ["c", "r2"], ["r"], name="add"), n[2], n[3]]
    out["cycle"] = model("cycle", nodes=cyc)[0]
    out["asym_pad"] = model("asym_pad", nodes=[n[0], helper.make_node("AveragePool", ["c"], ["r"], name="pool",
                                                                        kernel_shape=[2, 2], pads=[1, 1, 0, 0])] + n[2:])[0]
    shp = numpy_helper.from_array(np.array([-1, 4], np.int64), "shp")
    out["reshape_batch"] = model("reshape_batch", nodes=[n[0], n[1], helper.make_node("Reshape", ["r", "shp"], ["f"], name="reshape"),
                                                         n[3]], inits=[w, b, gw, gb, shp])[0]
    out["dyn_input"] = model("dyn_input", in_shape=("N", 1, "H", 4))[0]
    sm = model("softmax", nodes=[n[0], n[1], n[2], helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["z"], name="fc", transB=1),
                                 helper.make_node("Softmax", ["z"], ["y"], name="softmax", axis=-1)])[0]
    onnx.checker.check_model(sm, full_check=True)
    out["softmax"] = sm
    for k, v in out.items():
        path = os.path.join(outdir, k + ".onnx")
        with open(path, "wb") as f:
            f.write(v.SerializeToString())
        print(path, os.path.getsize(path), file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/onnx")
