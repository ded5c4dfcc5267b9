"""Diagnostics of a traced model: ops that block or zero automatic derivatives."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the target imports this module
    from .target import Target

#: Ops through which TensorFlow has no derivative at all: gradients come out as None or 0.
NO_GRADIENT_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
#: Ops whose derivative TensorFlow defines as zero (or blocks on purpose).
ZERO_GRADIENT_OPS = frozenset({"StopGradient", "PreventGradient", "Round", "Rint", "Floor", "Ceil", "Sign"})
_HARMLESS_OPS = frozenset({"Placeholder", "NoOp"})


def graph_nodes(concrete) -> list:
    """Every node of a traced function's graph, nested function bodies (loops, map_fn) included."""
    graph_def = concrete.graph.as_graph_def()
    return list(graph_def.node) + [nd for fn in graph_def.library.function for nd in fn.node_def]


def custom_gradient_ops(concrete) -> list[str]:
    """Names of the ops in a traced function whose gradient ``tf.custom_gradient`` replaced.

    ``tf.custom_gradient`` in a graph marks its ``IdentityN`` op with a
    ``_gradient_op_type`` attribute (``CustomGradient-<id>``); reverse mode calls that
    gradient, while forward mode (``ForwardAccumulator``) and ``tf.vectorized_map``'s
    conversion use the derivatives of the forward ops instead.
    """
    found = []
    for node in graph_nodes(concrete):
        if "_gradient_op_type" in node.attr and node.attr["_gradient_op_type"].s.startswith(b"CustomGradient"):
            found.append(node.name)
    return sorted(set(found))


def gradient_blockers(target: Target) -> dict[str, list[str]]:
    """Op types in the traced model that block or zero automatic derivatives.

    Returns ``{"none": [...], "zero": [...], "unregistered": [...]}``: ops TensorFlow
    cannot differentiate (``tf.numpy_function``, ``tf.py_function``), ops whose
    derivative is defined as zero (``tf.stop_gradient``, rounding), and ops with no
    registered gradient at all (typically custom ops). Nested function bodies (loops,
    ``tf.map_fn``) are searched too. An eagerly evaluated black box blocks everything.
    """
    from tensorflow.python.framework import ops as tf_ops

    found: dict[str, set[str]] = {"none": set(), "zero": set(), "unregistered": set()}
    kernel = target.kernel("evaluate", target.dtype)
    if target.eager:
        found["none"].add("(not traceable by TensorFlow)")
    else:
        for node in graph_nodes(kernel):
            if node.op in NO_GRADIENT_OPS:
                found["none"].add(node.op)
            elif node.op in ZERO_GRADIENT_OPS:
                found["zero"].add(node.op)
            elif node.op not in _HARMLESS_OPS and not node.op.startswith("TensorList"):
                try:
                    tf_ops._gradient_registry.lookup(node.op)
                except LookupError:
                    found["unregistered"].add(node.op)
    return {k: sorted(v) for k, v in found.items()}
