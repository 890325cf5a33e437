#!/usr/bin/env python3
"""TorchPerf peers harness: serves ONNX Runtime or PyTorch inference to the Olympics referee over stdin/stdout.

One process serves one model in one runtime, precision and thread count; the referee (crates/peers) starts it,
sends the event's queries and reads the outputs. The harness times its own inference calls with a monotonic
clock (time.perf_counter_ns) and reports raw nanoseconds, so that time spent in the pipe is never counted as
inference; the referee computes every statistic.

Protocol (both directions): frames of
    b"TPH1" | u32 little-endian header length | UTF-8 JSON header | payload of header["payload_bytes"] bytes
Payloads are little-endian float32 matrices, row-major, shaped by header["rows"] x header["cols"].

Requests (header "op"): hello, load, forward, queries, timed, memory, quit. `load` takes "int8_per_channel"
(ONNX Runtime int8 with per-channel MatMul weights only); `queries` takes "rows_per_query" (batched queries) and
"trim_zero_columns" (padding removed per query). Every reply has "ok"; a failed
request answers {"ok": false, "error": "..."} and the harness keeps serving.

`--fault MODE` makes the harness misbehave on its first forward request, so that the referee's handling of a
broken peer can be tested: crash (exit 3), hang (sleep), wrong-shape (one column too many), garbage (text on
stdout instead of a frame), nan (non-finite outputs).
"""

import argparse
import io
import json
import os
import platform
import struct
import sys
import tempfile
import time

MAGIC = b"TPH1"
MAX_HEADER_BYTES = 1 << 20


class Channel:
    """Framed messages over the process's original stdin/stdout (stdout is kept away from stray prints)."""

    def __init__(self):
        self.reader = os.fdopen(os.dup(0), "rb", buffering=0)
        self.writer = os.fdopen(os.dup(1), "wb", buffering=0)
        # Anything a library prints from now on goes to stderr, never into the protocol.
        os.dup2(2, 1)
        sys.stdout = sys.stderr

    def _read_exactly(self, n_bytes):
        chunks = []
        remaining = n_bytes
        while remaining > 0:
            chunk = self.reader.read(remaining)
            if not chunk:
                return None
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def receive(self):
        prefix = self._read_exactly(8)
        if prefix is None:
            return None, None
        if prefix[:4] != MAGIC:
            raise ValueError("bad frame magic")
        (header_length,) = struct.unpack("<I", prefix[4:])
        if header_length > MAX_HEADER_BYTES:
            raise ValueError(f"header of {header_length} bytes")
        header = json.loads(self._read_exactly(header_length).decode("utf-8"))
        payload = self._read_exactly(int(header.get("payload_bytes", 0))) or b""
        return header, payload

    def send(self, header, payload=b""):
        header = dict(header)
        header["payload_bytes"] = len(payload)
        encoded = json.dumps(header).encode("utf-8")
        self.writer.write(MAGIC + struct.pack("<I", len(encoded)) + encoded + payload)
        self.writer.flush()


def versions():
    """Versions of every peer component that is importable, and why the others are not."""
    found = {"python": platform.python_version()}
    for module in ("numpy", "onnx", "onnxruntime", "torch"):
        try:
            imported = __import__(module)
            found[module] = getattr(imported, "__version__", "unknown")
        except Exception as error:  # noqa: BLE001 - any import failure means "absent", with the reason
            found[module] = None
            found[module + "_error"] = f"{type(error).__name__}: {error}"
    try:
        import onnxruntime

        found["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except Exception:  # noqa: BLE001
        pass
    try:
        import torch

        found["torch_quantized_engines"] = list(torch.backends.quantized.supported_engines)
        # Where torch was imported from (Debian's python3-torch lives under /usr/lib/python3) and whether
        # it is a CUDA build, so a PyPI wheel in the venv cannot pass for the Debian CPU build.
        found["torch_path"] = os.path.dirname(torch.__file__)
        found["torch_cuda"] = torch.version.cuda
    except Exception:  # noqa: BLE001
        pass
    return found


def read_status_bytes(field):
    """A VmRSS / VmHWM line of /proc/self/status in bytes, or None."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak_rss():
    """Resets VmHWM to the current RSS (Linux >= 4.0: writing 5 to clear_refs); False when not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


class OnnxGraphModule:
    """The subset of ONNX that crates/peers exports for its MLPs and CNNs (Gemm, Conv with groups, MaxPool,
    GlobalAveragePool, Reshape, Transpose, Flatten, Relu, Sub, Mul, Div, ReduceMean, Identity), as torch modules
    (the character transformer's graph is served by ONNX Runtime only).

    PyTorch 1.13 cannot import ONNX; this maps each node of the exported file to the torch operation that
    computes it, so both runtimes serve the same weights.
    """

    @staticmethod
    def build(path):
        import numpy
        import onnx
        import torch
        from onnx import numpy_helper

        model = onnx.load(path)
        graph = model.graph
        initializers = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}

        class Graph(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.steps = []
                self.linears = torch.nn.ModuleList()
                self.constants = {}
                for node in graph.node:
                    attributes = {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}
                    if node.op_type == "Gemm":
                        if attributes.get("transA", 0) or attributes.get("alpha", 1.0) != 1.0 or attributes.get("beta", 1.0) != 1.0:
                            raise ValueError("only Gemm with alpha = beta = 1 and no transA is supported")
                        weight = initializers[node.input[1]]
                        if not attributes.get("transB", 0):
                            weight = weight.T
                        bias = initializers[node.input[2]]
                        linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
                        with torch.no_grad():
                            linear.weight.copy_(torch.from_numpy(numpy.ascontiguousarray(weight)))
                            linear.bias.copy_(torch.from_numpy(bias))
                        self.linears.append(linear)
                        self.steps.append(("linear", len(self.linears) - 1, list(node.input[:1]), node.output[0]))
                    elif node.op_type == "Conv":
                        weight = initializers[node.input[1]]
                        pads = list(attributes.get("pads", [0, 0, 0, 0]))
                        if len(set(pads)) != 1:
                            raise ValueError(f"only symmetric Conv padding is supported, got {pads}")
                        groups = int(attributes.get("group", 1))
                        conv = torch.nn.Conv2d(
                            weight.shape[1] * groups,
                            weight.shape[0],
                            tuple(weight.shape[2:]),
                            stride=tuple(attributes.get("strides", [1, 1])),
                            padding=pads[0],
                            groups=groups,
                        )
                        with torch.no_grad():
                            conv.weight.copy_(torch.from_numpy(numpy.ascontiguousarray(weight)))
                            conv.bias.copy_(torch.from_numpy(initializers[node.input[2]]))
                        self.linears.append(conv)
                        self.steps.append(("linear", len(self.linears) - 1, list(node.input[:1]), node.output[0]))
                    elif node.op_type == "Reshape":
                        shape = [int(value) for value in initializers[node.input[1]]]
                        self.steps.append(("Reshape", shape, list(node.input[:1]), node.output[0]))
                    elif node.op_type in ("Identity", "Relu", "Sub", "Mul", "Div", "ReduceMean", "MaxPool", "Transpose", "Flatten", "GlobalAveragePool"):
                        for name in node.input:
                            if name in initializers and name not in self.constants:
                                self.constants[name] = torch.from_numpy(numpy.ascontiguousarray(initializers[name]))
                        self.steps.append((node.op_type, attributes, list(node.input), node.output[0]))
                    else:
                        raise ValueError(f"ONNX operator {node.op_type} is not mapped to torch")
                self.input_name = graph.input[0].name
                self.output_name = graph.output[0].name

            def forward(self, x):
                values = {self.input_name: x}
                values.update(self.constants)
                for kind, argument, inputs, output in self.steps:
                    if kind == "linear":
                        values[output] = self.linears[argument](values[inputs[0]])
                    elif kind == "Reshape":
                        values[output] = values[inputs[0]].reshape(argument)
                    elif kind == "MaxPool":
                        values[output] = torch.nn.functional.max_pool2d(
                            values[inputs[0]], tuple(argument["kernel_shape"]), tuple(argument.get("strides", argument["kernel_shape"]))
                        )
                    elif kind == "GlobalAveragePool":
                        values[output] = torch.mean(values[inputs[0]], dim=(2, 3), keepdim=True)
                    elif kind == "Transpose":
                        values[output] = values[inputs[0]].permute(*argument["perm"])
                    elif kind == "Flatten":
                        values[output] = torch.flatten(values[inputs[0]], int(argument.get("axis", 1)))
                    elif kind == "Identity":
                        values[output] = values[inputs[0]]
                    elif kind == "Relu":
                        values[output] = torch.relu(values[inputs[0]])
                    elif kind == "Sub":
                        values[output] = values[inputs[0]] - values[inputs[1]]
                    elif kind == "Mul":
                        values[output] = values[inputs[0]] * values[inputs[1]]
                    elif kind == "Div":
                        values[output] = values[inputs[0]] / values[inputs[1]]
                    elif kind == "ReduceMean":
                        axes = argument.get("axes", [1])
                        values[output] = torch.mean(values[inputs[0]], dim=list(axes), keepdim=bool(argument.get("keepdims", 1)))
                return values[self.output_name]

        return Graph()


class Server:
    """The loaded model and the latency queries."""

    def __init__(self, fault):
        self.fault = fault
        self.run = None
        self.queries = []
        self.next_query = 0
        self.scratch = tempfile.mkdtemp(prefix="torchperf-peer-")

    def load(self, header):
        import numpy

        self.numpy = numpy
        path = header["model"]
        runtime = header["runtime"]
        precision = header["precision"]
        threads = int(header["threads"])
        reply = {"ok": True, "versions": versions(), "threads": threads}
        if runtime == "onnxruntime":
            import onnxruntime

            model_path = path
            recipe = None
            if precision == "int8":
                from onnxruntime.quantization import QuantType, quantize_dynamic

                model_path = os.path.join(self.scratch, "model.int8.onnx")
                if header.get("int8_per_channel"):
                    # Per-output-channel weights on the MatMuls only (embeddings and the rest stay f32): the
                    # recipe quant's int8 GEMM uses. quantize_dynamic's default (per-tensor, Gather too) puts
                    # all-MiniLM-L6-v2 at a cosine of 0.96 to f32; this one at 0.99.
                    quantize_dynamic(path, model_path, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"])
                    recipe = "per-channel QInt8 weights of MatMul"
                else:
                    quantize_dynamic(path, model_path, weight_type=QuantType.QInt8)
                    recipe = "QInt8 weights"
            elif precision != "f32":
                raise ValueError(f"precision {precision}")
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = onnxruntime.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
            input_name = session.get_inputs()[0].name
            output_names = [session.get_outputs()[0].name]
            self.run = lambda x: session.run(output_names, {input_name: x})[0]
            reply["provider"] = session.get_providers()[0]
            reply["model_bytes"] = os.path.getsize(model_path)
            reply["quantization"] = f"onnxruntime.quantization.quantize_dynamic ({recipe})" if precision == "int8" else None
        elif runtime == "torch":
            import torch

            torch.set_num_threads(threads)
            torch.set_num_interop_threads(1)
            torch.set_grad_enabled(False)
            module = OnnxGraphModule.build(path).eval()
            if precision == "int8":
                engines = list(torch.backends.quantized.supported_engines)
                engine = next((name for name in ("fbgemm", "x86", "onednn", "qnnpack") if name in engines), None)
                if engine is None:
                    raise ValueError(f"no quantized engine among {engines}")
                torch.backends.quantized.engine = engine
                module = torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)
                reply["quantization"] = f"torch.ao.quantization.quantize_dynamic (qint8, engine {engine})"
            elif precision != "f32":
                raise ValueError(f"precision {precision}")
            else:
                reply["quantization"] = None
            buffer = io.BytesIO()
            torch.save(module.state_dict(), buffer)
            reply["model_bytes"] = buffer.getbuffer().nbytes
            reply["model_bytes_note"] = "bytes of the saved state_dict"
            reply["provider"] = f"torch CPU ({torch.get_num_threads()} threads)"

            def run(x):
                with torch.inference_mode():
                    return module(torch.from_numpy(x)).numpy()

            self.run = run
        else:
            raise ValueError(f"runtime {runtime}")
        return reply

    def matrix(self, header, payload):
        rows, cols = int(header["rows"]), int(header["cols"])
        array = self.numpy.frombuffer(payload, dtype="<f4")
        if array.size != rows * cols:
            raise ValueError(f"payload of {array.size} values for {rows} x {cols}")
        return array.reshape(rows, cols)

    def forward(self, header, payload):
        x = self.matrix(header, payload)
        if self.fault == "crash":
            os._exit(3)
        if self.fault == "hang":
            time.sleep(3600)
        output = self.numpy.ascontiguousarray(self.run(x), dtype="<f4")
        if output.ndim == 1:
            output = output.reshape(-1, 1)
        if self.fault == "wrong-shape":
            output = self.numpy.zeros((output.shape[0], output.shape[1] + 1), dtype="<f4")
        if self.fault == "nan":
            output = self.numpy.full(output.shape, float("nan"), dtype="<f4")
        return {"ok": True, "rows": output.shape[0], "cols": output.shape[1]}, output.tobytes()

    def load_queries(self, header, payload):
        x = self.matrix(header, payload)
        # One contiguous array per query (rows_per_query consecutive rows, 1 by default), built before any
        # timing (the referee's queries are built before its timing too). trim_zero_columns drops each query's
        # trailing all-zero columns: token-id queries padded with [PAD] = 0 then run at their own length.
        rows_per_query = int(header.get("rows_per_query", 1))
        if rows_per_query < 1 or x.shape[0] % rows_per_query != 0:
            raise ValueError(f"{x.shape[0]} rows do not split into queries of {rows_per_query}")
        queries = []
        for start in range(0, x.shape[0], rows_per_query):
            query = x[start : start + rows_per_query]
            if header.get("trim_zero_columns"):
                used = self.numpy.flatnonzero(query.any(axis=0))
                query = query[:, : (used[-1] + 1 if used.size else 1)]
            queries.append(self.numpy.ascontiguousarray(query))
        self.queries = queries
        self.next_query = 0
        return {"ok": True, "queries": len(self.queries)}

    def timed(self, header):
        iterations = int(header["iterations"])
        if not self.queries:
            raise ValueError("no latency queries loaded")
        queries = self.queries
        n_queries = len(queries)
        index = self.next_query
        run = self.run
        start = time.perf_counter_ns()
        for _ in range(iterations):
            run(queries[index])
            index += 1
            if index == n_queries:
                index = 0
        elapsed = time.perf_counter_ns() - start
        self.next_query = index
        return {"ok": True, "elapsed_ns": elapsed, "iterations": iterations}

    def memory(self, header, payload):
        x = self.matrix(header, payload)
        reset = reset_peak_rss()
        before = read_status_bytes("VmRSS")
        self.run(x)
        peak = read_status_bytes("VmHWM")
        reply = {"ok": True, "process_peak_rss_bytes": peak, "process_rss_bytes": before}
        if reset and before is not None and peak is not None:
            reply["query_peak_bytes"] = max(0, peak - before)
        else:
            reply["query_peak_note"] = "the peak RSS could not be reset (/proc/self/clear_refs)"
        return reply


def serve(fault):
    channel = Channel()
    server = Server(fault)
    while True:
        try:
            header, payload = channel.receive()
        except Exception as error:  # noqa: BLE001 - a broken request stream ends the harness
            print(f"harness: unreadable request: {error}", file=sys.stderr)
            return 2
        if header is None:
            return 0
        op = header.get("op")
        try:
            if op == "quit":
                channel.send({"ok": True})
                return 0
            if op == "hello":
                channel.send({"ok": True, "versions": versions(), "pid": os.getpid()})
            elif op == "load":
                channel.send(server.load(header))
            elif op == "forward":
                if fault == "garbage":
                    channel.writer.write(b"this is not a frame\n" * 4)
                    channel.writer.flush()
                    continue
                reply, output = server.forward(header, payload)
                channel.send(reply, output)
            elif op == "queries":
                channel.send(server.load_queries(header, payload))
            elif op == "timed":
                channel.send(server.timed(header))
            elif op == "memory":
                channel.send(server.memory(header, payload))
            else:
                channel.send({"ok": False, "error": f"unknown op {op!r}"})
        except Exception as error:  # noqa: BLE001 - reported to the referee, which makes it an ERROR
            channel.send({"ok": False, "error": f"{type(error).__name__}: {error}"})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", action="store_true", help="print the peer components' versions as JSON and exit")
    parser.add_argument("--fault", choices=["none", "crash", "hang", "wrong-shape", "garbage", "nan"], default="none")
    arguments = parser.parse_args()
    if arguments.versions:
        print(json.dumps(versions(), indent=1, sort_keys=True))
        return 0
    return serve(arguments.fault)


if __name__ == "__main__":
    sys.exit(main())
