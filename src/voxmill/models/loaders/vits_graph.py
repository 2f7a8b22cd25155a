"""Surgery on a VITS voice's ONNX graph (Piper's export), done once when a voice is split (:mod:`.vits`):
1-D convolutions rewritten as 2-D ones, the graph split into encoder and decoder, the decoder cut in two
stages (:mod:`.vits_stages` says why), each part of it kept 2-D from end to end (:func:`stay_2d`). No
library does these rewrites, hence by hand on the ``onnx`` protobuf; ``onnx.utils.Extractor`` does the
extracting."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DECODER_PREFIX", "VitsParts", "conv1d_as_conv2d", "cut_decoder", "polyphase", "split_vits", "stay_2d"]

DECODER_PREFIX = "/dec/"


def conv1d_as_conv2d(model: Any) -> Any:
    """Rewrite every 1-D Conv/ConvTranspose of ``model`` (an onnx ModelProto, changed in place) as the
    same 2-D one on a height-1 input, between an Unsqueeze and a Squeeze of axis 2."""
    from onnx import AttributeProto, helper, numpy_helper

    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    axis = "voxmill_axis2"
    graph.initializer.append(numpy_helper.from_array(np.array([2], np.int64), axis))
    convs = ("Conv", "ConvTranspose")
    # torch's exporter stores identical weights once and hands the copies out through Identity nodes
    # (an untrained model's zero-initialised flow layers, say): follow them to the one initializer,
    # reshape it once, and rewrite every convolution that uses it, unless something else uses it too.
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity" and n.input[0] in weights}
    elsewhere = {
        alias.get(name, name)
        for n in graph.node
        if n.op_type != "Identity"
        for k, name in enumerate(n.input)
        if not (n.op_type in convs and k == 1)
    }
    nodes = []
    reshaped: set[str] = set()
    for node in graph.node:
        weight = weights.get(alias.get(node.input[1], node.input[1])) if node.op_type in convs else None
        if weight is None or weight.name in elsewhere or (len(weight.dims) != 3 and weight.name not in reshaped):
            nodes.append(node)
            continue
        if weight.name not in reshaped:
            array = numpy_helper.to_array(weight)
            weight.CopyFrom(numpy_helper.from_array(array[:, :, None, :], weight.name))
            reshaped.add(weight.name)
        for attr in node.attribute:
            if attr.type != AttributeProto.INTS:
                continue
            values = list(attr.ints)
            if attr.name in ("kernel_shape", "dilations", "strides", "output_padding"):
                values = [1, *values]
            elif attr.name == "pads":  # [begin, end] -> [top, left, bottom, right]
                values = [0, values[0], 0, values[1]]
            else:
                continue
            del attr.ints[:]
            attr.ints.extend(values)
        source, target = node.input[0], node.output[0]
        node.input[0], node.output[0] = f"{node.name}/in2d", f"{node.name}/out2d"
        nodes.append(helper.make_node("Unsqueeze", [source, axis], [node.input[0]], name=f"{node.name}/unsqueeze"))
        nodes.append(node)
        nodes.append(helper.make_node("Squeeze", [node.output[0], axis], [target], name=f"{node.name}/squeeze"))
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # shapes of rewritten tensors changed; onnxruntime infers them again
    return model


@dataclass(frozen=True)
class VitsParts:
    encoder: Any  # onnx ModelProto: the model's inputs -> the decoder's inputs
    decoder: Any  # onnx ModelProto: latent (+ speaker embedding) -> audio
    latent: str  # the decoder input with time on its last axis
    channels: int  # latent channels


def split_vits(model: Any) -> VitsParts | None:
    """The encoder and decoder of a VITS export, or None if ``model`` is not one.

    The decoder is every node under ``/dec/`` (and what follows it to the output); its inputs from the
    rest of the graph are the latent (the input of its first convolution, time on the last axis) and,
    for multi-speaker voices, the speaker embedding, which the encoder then also outputs.
    """
    from onnx.utils import Extractor

    graph = model.graph
    decoder = [n for n in graph.node if n.name.startswith(DECODER_PREFIX)]
    if not decoder or len(graph.output) != 1:
        return None
    produced = {name for n in decoder for name in n.output}
    constants = {init.name for init in graph.initializer}
    constants |= {name for n in graph.node if n.op_type == "Constant" for name in n.output}
    needed = [name for n in decoder for name in n.input if name and name not in produced | constants]
    boundary = list(dict.fromkeys(needed))
    first_conv = next((n for n in decoder if n.op_type == "Conv"), None)
    if first_conv is None or first_conv.input[0] not in boundary:
        return None
    weights = {init.name: init for init in graph.initializer}
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity" and n.input[0] in weights}
    weight = weights.get(alias.get(first_conv.input[1], first_conv.input[1]))
    if weight is None or len(weight.dims) != 3:
        return None
    typed = {v.name for v in (*graph.value_info, *graph.input, *graph.output)}
    if any(name not in typed for name in boundary):
        # The Extractor needs the boundary's types. torch's exporter of today writes no value_info, and
        # onnx >= 1.19's Extractor no longer infers them itself: infer them here (piper's older exports
        # carried them, which is why those split and a fresh piper-train export did not).
        from onnx.shape_inference import infer_shapes

        model = infer_shapes(model)
        graph = model.graph
        typed = {v.name for v in (*graph.value_info, *graph.input, *graph.output)}
        untyped = [name for name in boundary if name not in typed]
        if untyped:
            raise ValueError(f"shape inference gives no type for the decoder's input {', '.join(untyped)}")
    extractor = Extractor(model)
    return VitsParts(
        encoder=extractor.extract_model([i.name for i in graph.input], boundary),
        decoder=extractor.extract_model(boundary, [graph.output[0].name]),
        latent=first_conv.input[0],
        channels=int(weight.dims[1]),
    )


def cut_decoder(decoder: Any, prefix: str) -> tuple[Any, Any, str] | None:
    """``decoder`` (an onnx ModelProto, 1-D convolutions already rewritten as 2-D) as (low, high, cut):
    low = its inputs -> the tensor ``cut`` entering its second upsampling (ConvTranspose) block; high =
    ``cut`` -> its output. None when there is no such single cut (another architecture, a high part
    that also reads the speaker embedding, ...): the decoder then runs as one part."""
    from onnx.shape_inference import infer_shapes
    from onnx.utils import Extractor

    graph = decoder.graph
    producer = {out: node for node in graph.node for out in node.output}
    ups = [n for n in graph.node if n.op_type == "ConvTranspose" and n.name.startswith(prefix)]
    if len(ups) < 2 or len(graph.output) != 1:
        return None
    # Walk back from the second upsampling over what conv1d_as_conv2d put before it (Unsqueeze) and the
    # activation before that (LeakyRelu): the cut is the block's input, the first stage's output.
    cut = ups[1].input[0]
    while cut in producer and producer[cut].op_type in ("Unsqueeze", "LeakyRelu"):
        cut = producer[cut].input[0]
    if cut not in producer:
        return None
    constants = {init.name for init in graph.initializer}
    constants |= {name for n in graph.node if n.op_type == "Constant" for name in n.output}
    # Everything the output depends on, stopping at the cut: it must need nothing else from outside.
    needed, seen = [graph.output[0].name], set()
    while needed:
        name = needed.pop()
        if name in seen or name == cut or name in constants:
            continue
        seen.add(name)
        node = producer.get(name)
        if node is None:  # a graph input (the latent, a speaker embedding) reached past the cut
            return None
        needed.extend(i for i in node.input if i)
    typed = infer_shapes(decoder)  # the Extractor needs the cut's type; the rewrite dropped value_info
    extractor = Extractor(typed)
    low = extractor.extract_model([i.name for i in graph.input], [cut])
    high = extractor.extract_model([cut], [graph.output[0].name])
    return low, high, cut


# Element-wise operators a 2-D twin may go through: they act the same on (N, C, T) and (N, C, 1, T).
ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div", "LeakyRelu", "Relu", "Tanh", "Sigmoid"})
UNARY = frozenset({"LeakyRelu", "Relu", "Tanh", "Sigmoid"})
AXIS2 = "voxmill_axis2"


def stay_2d(model: Any) -> Any:
    """``model`` (a decoder part after :func:`conv1d_as_conv2d`; changed in place) with the tensors between
    its convolutions kept 2-D, so onnxruntime's blocked (NCHWc) convolutions hand their output straight
    to the next one instead of converting to and from the plain layout around every Add and LeakyRelu.

    Why: in the high-rate part those conversions, with the LeakyRelu and Add run in the plain layout,
    took ~20% of its time (profiled). onnxruntime's blocked layout has no LeakyRelu of its own but fuses
    one into a convolution, so each LeakyRelu gets a depthwise convolution by 1 before it (exact: x * 1),
    and each ConvTranspose (which has no blocked form) one after it, which brings its output into the
    blocked layout once for the residual sums that follow. A division by a constant read only by such a
    LeakyRelu (HiFi-GAN's mean of its residual blocks) becomes that convolution's weight (1/constant), as
    the blocked layout has no Div either: it took ~2% of the high-rate part, with the conversions around
    it. The same samples up to float rounding (checked by the split's verification); a tensor something
    else reads is made 1-D again for it."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    values = _scalars(graph.node, weights)
    constants = set(values)
    channels = _channels(graph.node, weights, constants)
    readers = Counter(name for node in graph.node for name in node.input)
    readers.update(out.name for out in graph.output)
    twin: dict[str, str] = {}  # a 1-D tensor -> its 2-D form
    alias: dict[str, str] = {}  # an Unsqueeze's output -> the 2-D form made earlier
    virtual: set[str] = set()  # 1-D tensors whose node was dropped (made again if something reads them)
    divided: dict[str, tuple[Any, float]] = {}  # a Div's 2-D copy's output -> (the copy, the divisor)
    nodes: list[Any] = []
    made = itertools.count()

    def fresh(base: str) -> str:
        return f"{base}/voxmill2d{next(made)}"

    def by_one(source: str, c: int, out: str | None = None, scale: float = 1.0) -> str:
        """A depthwise convolution of ``source`` (c channels) by ``scale`` (1: the same values), in the
        blocked layout."""
        name = f"voxmill_ones_{c}" if scale == 1.0 else f"voxmill_scale_{c}_{next(made)}"
        if name not in weights:
            weights[name] = numpy_helper.from_array(np.full((c, 1, 1, 1), scale, np.float32), name)
            graph.initializer.append(weights[name])
        out = out or fresh(source)
        nodes.append(helper.make_node("Conv", [source, name], [out], name=fresh(out), group=c))
        return out

    def read(name: str) -> str:
        if name in virtual:  # made 1-D again for a reader outside
            nodes.append(helper.make_node("Squeeze", [twin[name], AXIS2], [name], name=fresh(name)))
            virtual.discard(name)
        return alias.get(name, name)

    for node in graph.node:
        axis2 = node.op_type in ("Unsqueeze", "Squeeze") and list(node.input[1:]) == [AXIS2]
        if axis2 and node.op_type == "Unsqueeze" and node.input[0] in twin:
            alias[node.output[0]] = twin[node.input[0]]
            continue
        if axis2 and node.op_type == "Squeeze":
            twin[node.output[0]] = alias.get(node.input[0], node.input[0])
            virtual.add(node.output[0])
            continue
        moving = [i for i in node.input if i and i not in constants]
        if node.op_type in ELEMENTWISE and moving and all(i in twin for i in moving):
            inputs = [twin.get(i, i) for i in node.input]
            c = channels.get(node.input[0], 0)
            if node.op_type == "LeakyRelu" and c:
                if inputs[0] in divided and readers[node.input[0]] == 1:  # x / k, then LeakyRelu: x * (1/k)
                    division, divisor = divided.pop(inputs[0])
                    nodes.remove(division)
                    inputs[0] = by_one(division.input[0], c, scale=1.0 / divisor)
                else:
                    inputs[0] = by_one(inputs[0], c)
            out = fresh(node.output[0])
            copy = helper.make_node(node.op_type, inputs, [out], name=out)
            copy.attribute.extend(node.attribute)
            nodes.append(copy)
            operand = values.get(node.input[1]) if node.op_type == "Div" else None
            if operand is not None and operand.dtype.kind == "f" and operand != 0:
                divided[out] = (copy, float(operand))
            twin[node.output[0]] = out
            virtual.add(node.output[0])
            continue
        node.input[:] = [read(i) if i else i for i in node.input]
        nodes.append(node)
        if axis2:  # an Unsqueeze of a tensor without a 2-D form yet (the part's input): it is one now
            twin[node.input[0]] = node.output[0]
        elif node.op_type == "ConvTranspose" and node.input[1] in weights:
            # Its output, 2-D already (the Squeeze after it is dropped), through a depthwise conv by 1.
            group = next((a.i for a in node.attribute if a.name == "group"), 1) or 1
            target, node.output[0] = node.output[0], fresh(node.output[0])
            by_one(node.output[0], int(weights[node.input[1]].dims[1]) * group, target)
    for out in graph.output:
        read(out.name)
    del graph.node[:]
    graph.node.extend(node for n in nodes for node in _one_channel(n, weights, graph))
    _drop_unused(graph)  # conv_post's weight, replaced
    return model


def _one_channel(node: Any, weights: dict[str, Any], graph: Any) -> list[Any]:
    """A 2-D convolution to one channel (``conv_post``, to the waveform) as three cheap ones: a 1x1 conv
    to one channel per tap (padded to 8), a depthwise conv that shifts each tap into place, their sum.

    Why: the blocked layout computes 8 output channels where there is one, and the plain one copies the
    input 7 times (im2col): either way ~2.7 ms of the high-rate part's ~77 per window, 3.5%; this way
    ~0.3. The same sum in another order (float rounding)."""
    from onnx import helper, numpy_helper

    attrs = _attrs(node)
    weight = weights.get(node.input[1]) if node.op_type == "Conv" and len(node.input) >= 2 else None
    if weight is None or len(weight.dims) != 4 or weight.dims[0] != 1 or weight.dims[2] != 1:
        return [node]
    taps = int(weight.dims[3])
    plain = all(v == 1 for k in ("strides", "dilations") for v in attrs.get(k, [1, 1]))
    if not plain or attrs.get("group", 1) != 1 or not 1 < taps <= 8:
        return [node]
    w = numpy_helper.to_array(weight)[0, :, 0, :]  # (channels, taps)
    spread = np.zeros((8, w.shape[0], 1, 1), np.float32)
    spread[:taps, :, 0, 0] = w.T
    shift = np.zeros((8, 1, 1, taps), np.float32)
    shift[np.arange(taps), 0, 0, np.arange(taps)] = 1.0
    base = f"{node.name}/voxmill_taps"
    graph.initializer.extend([numpy_helper.from_array(spread, f"{base}/spread"),
                              numpy_helper.from_array(shift, f"{base}/shift"),
                              numpy_helper.from_array(np.array([1], np.int64), f"{base}/axis")])  # fmt: skip
    out = node.output[0] if len(node.input) < 3 or not node.input[2] else f"{base}/sum"
    done = [
        helper.make_node("Conv", [node.input[0], f"{base}/spread"], [f"{base}/each"], name=f"{base}/each"),
        helper.make_node(
            "Conv",
            [f"{base}/each", f"{base}/shift"],
            [f"{base}/shifted"],
            name=f"{base}/shifted",
            group=8,
            kernel_shape=[1, taps],
            pads=attrs.get("pads", [0, 0, 0, 0]),
        ),
        helper.make_node("ReduceSum", [f"{base}/shifted", f"{base}/axis"], [out], name=f"{base}/sum", keepdims=1),
    ]
    if out != node.output[0]:  # the bias, after the sum
        done.append(helper.make_node("Add", [out, node.input[2]], [node.output[0]], name=f"{base}/bias"))
    return done


def polyphase(model: Any) -> Any:
    """``model`` (a decoder part after :func:`stay_2d`; changed in place) with each upsampling
    ConvTranspose (height 1, stride s, kernel K, pads p with K - 2p = s: HiFi-GAN's) as plain convolutions
    at the input's rate that give the s phases of its output (output step m*s + r is phase r of step m),
    interleaved by a Reshape-Transpose-Reshape.

    Why: onnxruntime runs a ConvTranspose through a plain-layout GEMM and col2im, at ~35 GMAC/s per core
    here where its blocked convolutions run at ~53; the upsamplings were 15% of the high-rate part's time
    and 14% of the low-rate part's (profiled). Phase r reads input steps m - d for the d with
    0 <= d*s + r + p < K: two taps for HiFi-GAN, (m-1, m) for the first half of the phases and (m, m+1)
    for the second, so one convolution per such group, with no zero taps: the same multiply-adds in
    another order (float rounding). Any other ConvTranspose is left as it is."""
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    nodes: list[Any] = []
    for node in graph.node:
        done = _phases(node, weights, graph) if node.op_type == "ConvTranspose" else None
        nodes.extend(done or [node])
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unused(graph)  # the ConvTransposes' weights, replaced
    return model


def _phases(node: Any, weights: dict[str, Any], graph: Any) -> list[Any] | None:
    """The nodes that replace one ConvTranspose (see :func:`polyphase`), or None to keep it."""
    from onnx import helper, numpy_helper

    weight = weights.get(node.input[1])
    attrs = _attrs(node)
    if weight is None or len(weight.dims) != 4 or weight.dims[2] != 1 or attrs.get("group", 1) != 1:
        return None
    if len(node.input) > 2 and node.input[2] and node.input[2] not in weights:
        return None
    w = numpy_helper.to_array(weight)  # (in, out, 1, K)
    taps, (stride_h, stride), pads = int(w.shape[3]), attrs.get("strides", [1, 1]), attrs.get("pads", [0, 0, 0, 0])
    plain = attrs.get("dilations", [1, 1]) == [1, 1] and not any(attrs.get("output_padding", [0, 0]))
    if not plain or stride_h != 1 or pads[0] or pads[2] or pads[1] != pads[3] or stride < 2:
        return None
    pad = pads[1]
    if taps - 2 * pad != stride or set(attrs) - {"strides", "pads", "kernel_shape", "dilations", "group",
                                                  "output_padding"}:  # fmt: skip
        return None
    channels = int(w.shape[1])
    bias = (numpy_helper.to_array(weights[node.input[2]]) if len(node.input) > 2 and node.input[2]
            else np.zeros(channels, np.float32))  # fmt: skip
    groups: dict[tuple[int, int], list[int]] = {}
    for r in range(stride):  # input offsets d (step m - d) that reach phase r: the kernel taps d*s + r + pad
        groups.setdefault((-((r + pad) // stride), (taps - 1 - r - pad) // stride), []).append(r)
    base = f"{node.name}/voxmill_phases"
    done, outs = [], []
    for g, ((low, high), phases) in enumerate(groups.items()):  # dict order: phases ascending
        span = high - low + 1
        kernel = np.zeros((len(phases) * channels, w.shape[0], 1, span), np.float32)
        for j, r in enumerate(phases):
            for t in range(span):  # tap t reads step m - (high - t)
                kernel[j * channels : (j + 1) * channels, :, 0, t] = w[:, :, 0, (high - t) * stride + r + pad].T
        name = f"{base}/{g}"
        tiled = np.tile(bias, len(phases)).astype(np.float32)
        graph.initializer.extend(
            [numpy_helper.from_array(kernel, f"{name}/weight"), numpy_helper.from_array(tiled, f"{name}/bias")]
        )
        done.append(helper.make_node("Conv", [node.input[0], f"{name}/weight", f"{name}/bias"], [f"{name}/out"],
                                     name=name, kernel_shape=[1, span], pads=[0, high, 0, -low]))  # fmt: skip
        outs.append(f"{name}/out")
    joined = outs[0]
    if len(outs) > 1:
        joined = f"{base}/joined"
        done.append(helper.make_node("Concat", outs, [joined], name=joined, axis=1))
    shapes = {"split": [0, stride, channels, -1], "merge": [0, channels, 1, -1]}  # 0: the batch, as it is
    graph.initializer.extend(numpy_helper.from_array(np.array(v, np.int64), f"{base}/{k}") for k, v in shapes.items())
    done += [
        helper.make_node("Reshape", [joined, f"{base}/split"], [f"{base}/split_out"], name=f"{base}/split"),
        helper.make_node(
            "Transpose", [f"{base}/split_out"], [f"{base}/interleaved"], name=f"{base}/interleave", perm=[0, 2, 3, 1]
        ),
        helper.make_node("Reshape", [f"{base}/interleaved", f"{base}/merge"], [node.output[0]], name=f"{base}/merge"),
    ]
    return done


def _drop_unused(graph: Any) -> None:
    """Drop the initializers no node reads any more, and the shapes the rewrite made stale (onnxruntime
    infers them again)."""
    used = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.value_info[:]


def _attrs(node: Any) -> dict[str, Any]:
    """A node's attributes by name: a list for the list-valued ones, else the integer (0 for others)."""
    return {a.name: list(a.ints) if a.ints else a.i for a in node.attribute}


def _scalars(nodes: Any, weights: dict[str, Any]) -> dict[str, np.ndarray]:
    """The one-value initializers and Constants (operands that need no 2-D form; a divisor to fold)."""
    from onnx import numpy_helper

    found = {name: numpy_helper.to_array(init) for name, init in weights.items() if int(np.prod(init.dims)) == 1}
    for node in nodes:
        value = next((a.t for a in node.attribute if a.name == "value"), None) if node.op_type == "Constant" else None
        if value is not None and int(np.prod(value.dims)) == 1:
            found[node.output[0]] = numpy_helper.to_array(value)
    return {name: value.reshape(-1)[0] for name, value in found.items()}


def _channels(nodes: Any, weights: dict[str, Any], constants: set[str]) -> dict[str, int]:
    """Channels of the 1-D tensors entering and leaving the convolutions (rewritten 2-D: between an
    Unsqueeze and a Squeeze), carried through the element-wise operators both ways."""
    producer = {out: n for n in nodes for out in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    found: dict[str, int] = {}
    for n in nodes:
        if n.op_type not in ("Conv", "ConvTranspose") or n.input[1] not in weights:
            continue
        dims = weights[n.input[1]].dims
        group = next((a.i for a in n.attribute if a.name == "group"), 1) or 1
        into, out = (dims[1] * group, dims[0]) if n.op_type == "Conv" else (dims[0], dims[1] * group)
        before = producer.get(n.input[0])
        if before is not None and before.op_type == "Unsqueeze":
            found[before.input[0]] = int(into)
        for after in consumers.get(n.output[0], []):
            if after.op_type == "Squeeze":
                found[after.output[0]] = int(out)
    changed = True
    while changed:
        changed = False
        for n in nodes:
            if n.op_type not in ELEMENTWISE:
                continue
            moving = [i for i in n.input if i and i not in constants]
            known = [found[i] for i in (*moving, n.output[0]) if i in found]
            if not known:
                continue
            for name in (*moving, n.output[0]) if n.op_type in UNARY or len(moving) == 1 else (n.output[0],):
                if name not in found:
                    found[name] = known[0]
                    changed = True
    return found
