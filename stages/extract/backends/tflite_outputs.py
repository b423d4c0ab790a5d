"""Choose a .tflite model's outputs by editing its flatbuffer in memory.

`experimental_preserve_all_tensors=True` keeps every intermediate buffer alive and costs about a
quarter of the landmark model's speed. Listing just the few tensors we read as subgraph outputs
lets the runtime (XNNPACK included) plan memory as usual and materialise only those. Pruning then
drops the operators that feed none of them: the interpreter runs every operator of its plan
whether or not anyone reads the result, and the landmark model's segmentation branch (upsampling
to 256x256) and world landmarks are about 40% of its time.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterable

import flatbuffers
from ai_edge_litert import schema_py_generated as tflite_schema
from ai_edge_litert.interpreter import Interpreter

from posebridge.cache.errors import UserError

_FILE_IDENTIFIER = b"TFL3"


def with_outputs(model_bytes: bytes, tensor_names: Iterable[str], *, prune: bool = False) -> bytes:
    """The model's bytes with the named tensors of subgraph 0 as outputs.

    prune=False appends them to the model's own outputs; prune=True makes them the only outputs
    and removes every operator none of them depends on (what is kept computes exactly as before).
    """
    model = tflite_schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    graph = model.subgraphs[0]
    index_by_name = {tensor.name.decode(): i for i, tensor in enumerate(graph.tensors)}
    outputs = [] if prune else list(graph.outputs)
    for name in tensor_names:
        if name not in index_by_name:
            raise UserError(f"tensor {name!r} is not in the model; is the model file the pinned one?")
        if index_by_name[name] not in outputs:
            outputs.append(index_by_name[name])
    graph.outputs = outputs
    if prune:
        needed, kept = set(outputs), []
        for op in reversed(graph.operators):  # operators are stored in execution order
            if any(t in needed for t in op.outputs):
                kept.append(op)
                needed.update(t for t in op.inputs if t >= 0)
        graph.operators = kept[::-1]
    builder = flatbuffers.Builder(len(model_bytes) + (1 << 16))
    builder.Finish(model.Pack(builder), file_identifier=_FILE_IDENTIFIER)
    return bytes(builder.Output())


def output_index_by_name(interpreter: Interpreter) -> dict[str, int]:
    return {d["name"]: d["index"] for d in interpreter.get_output_details()}


def load_interpreter(model_path: Path, outputs: Iterable[str] = (), *, prune: bool = False,
                     preserve_all: bool = False, num_threads: int = 2) -> Interpreter:
    """An allocated interpreter that can read `outputs` by name after invoke() (see with_outputs).

    With preserve_all=True the model is left unedited and every tensor is kept (slower); this
    mode exists as the reference the chosen outputs are checked and timed against.
    """
    content = None if preserve_all else with_outputs(Path(model_path).read_bytes(), outputs, prune=prune)
    with _native_info_silenced():
        if preserve_all:
            interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads,
                                      experimental_preserve_all_tensors=True)
        else:
            interpreter = Interpreter(model_content=content, num_threads=num_threads)
        interpreter.allocate_tensors()
    return interpreter


@contextlib.contextmanager
def _native_info_silenced():
    """The runtime's C++ logger prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." to
    the process's stderr for every interpreter, which would turn a one-line error into two. Its
    failures still raise in Python, with their message."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
