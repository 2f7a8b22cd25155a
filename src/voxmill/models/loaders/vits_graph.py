"""Surgery on a VITS voice's ONNX graph (Piper's export), done once when a voice is split (:mod:`.vits`):
1-D convolutions rewritten as 2-D ones, the graph split into encoder and decoder, the decoder cut in two
stages (:mod:`.vits_stages` says why). No library does these rewrites, hence by hand on the ``onnx``
protobuf; ``onnx.utils.Extractor`` does the extracting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DECODER_PREFIX", "VitsParts", "conv1d_as_conv2d", "cut_decoder", "split_vits"]

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
