"""The Python side of the safetensors interoperability tests: writes and reads
the published format by hand from PyTorch tensors (json + struct + torch),
independently of cnnc. Exits non-zero, with a message, on any mismatch.

    safetensors_reference.py write PATH        known tensors in F32, F64, F16, BF16 and I64
    safetensors_reference.py random SEED PATH  random F32 tensors, special values included
    safetensors_reference.py check PATH        the tensors the C++ test wrote, in the reference layout
    safetensors_reference.py same A B          B holds A's tensors bit for bit, in the reference layout
"""

import json
import struct
import sys

import torch

DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16",
          torch.bfloat16: "BF16", torch.int64: "I64"}
TORCH_DTYPES = {name: dtype for dtype, name in DTYPES.items()}
# The integer type whose bits each dtype's values are viewed as.
BIT_VIEWS = {torch.float32: torch.int32, torch.float64: torch.int64, torch.float16: torch.int16,
             torch.bfloat16: torch.int16, torch.int64: torch.int64}


def tensor_bytes(tensor):
    # numpy has no bfloat16: go through the integer view of the same bits.
    bits = tensor.contiguous().view(BIT_VIEWS[tensor.dtype]).numpy()
    return bits.astype(bits.dtype.newbyteorder("<")).tobytes()


def write_file(path, tensors, metadata=None, order=None):
    """Writes `tensors` (name -> tensor) in `order`, the header padded like the reference's."""
    header, chunks, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name in order or sorted(tensors):
        tensor = tensors[name]
        data = tensor_bytes(tensor)
        header[name] = {"dtype": DTYPES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def known_tensors():
    return {
        "conv.weight": (torch.arange(12, dtype=torch.float32) * 0.5 - 1).reshape(2, 3, 1, 2),
        "double": torch.tensor([0.25, 1e-3, 1e300], dtype=torch.float64),
        "half": torch.tensor([-1.0, 0.5, 2.0, 65504.0, 2.0**-24], dtype=torch.float16),
        "brain": torch.tensor([1.5, -3.0, 1e30], dtype=torch.bfloat16),
        "bn.num_batches_tracked": torch.tensor(7, dtype=torch.int64),
        "scalar": torch.tensor(3.5, dtype=torch.float32),
        "empty": torch.zeros(0, 3, dtype=torch.float32),
    }


def random_tensors(seed):
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for i, shape in enumerate([(6, 1, 5, 5), (6,), (120, 400), (10,), (3, 3, 3, 3)]):
        tensors[f"layer{i}.{'bias' if len(shape) == 1 else 'weight'}"] = torch.randn(
            shape, generator=generator)
    special = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 1e-45, 3.4028235e38])
    tensors["special"] = special
    return tensors


def read_file(path):
    """Returns (header bytes, header as an ordered dict, tensors by name)."""
    with open(path, "rb") as f:
        blob = f.read()
    (length,) = struct.unpack("<Q", blob[:8])
    text = blob[8:8 + length]
    header = json.loads(text)
    data = blob[8 + length:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = TORCH_DTYPES[info["dtype"]]
        raw = bytearray(data[begin:end])
        bits = torch.frombuffer(raw, dtype=BIT_VIEWS[dtype]) if raw else torch.zeros(
            0, dtype=BIT_VIEWS[dtype])
        tensors[name] = bits.view(dtype).reshape(info["shape"])
    return text, header, tensors, len(data)


def reference_layout_problem(path):
    """Why the file is not byte for byte what the reference writer would write, or None."""
    text, header, tensors, data_size = read_file(path)
    expected = {}
    if "__metadata__" in header:
        expected["__metadata__"] = header["__metadata__"]
    offset = 0
    for name in sorted(n for n in header if n != "__metadata__"):
        info = header[name]
        size = tensors[name].numel() * 4
        expected[name] = {"dtype": "F32", "shape": info["shape"],
                          "data_offsets": [offset, offset + size]}
        offset += size
    expected_text = json.dumps(expected, separators=(",", ":"), ensure_ascii=False).encode()
    expected_text += b" " * (-len(expected_text) % 8)
    if text != expected_text:
        return f"header\n  {text!r}\nis not the reference's\n  {expected_text!r}"
    if offset != data_size:
        return f"{data_size} bytes of data, expected {offset}"
    return None


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(
        a.view(BIT_VIEWS[a.dtype]), b.view(BIT_VIEWS[b.dtype]))


def check(path):
    problem = reference_layout_problem(path)
    if problem:
        return problem
    _, header, tensors, _ = read_file(path)
    if header.get("__metadata__") != {"format": "cnnc", "note": "ü \"quoted\"\n"}:
        return f"metadata {header.get('__metadata__')!r}"
    expected = {"x": torch.arange(6, dtype=torch.float32).reshape(2, 3),
                "y": torch.tensor([-7.5]),
                "odd \"name\" é\t": torch.tensor(2.0**-149)}
    if set(tensors) != set(expected):
        return f"tensors {sorted(tensors)}, expected {sorted(expected)}"
    for name, want in expected.items():
        if not same_bits(tensors[name], want):
            return f"tensor {name!r}: {tensors[name]} != {want}"
    return None


def same(path_a, path_b):
    problem = reference_layout_problem(path_b)
    if problem:
        return problem
    _, _, a, _ = read_file(path_a)
    _, _, b, _ = read_file(path_b)
    if set(a) != set(b):
        return f"tensors {sorted(b)}, expected {sorted(a)}"
    for name in a:
        if not same_bits(a[name], b[name]):
            return f"tensor {name!r} differs"
    return None


def main(argv):
    command = argv[1]
    if command == "write":
        tensors = known_tensors()
        # Stored in an order other than by name: readers must go by the offsets.
        write_file(argv[2], tensors, metadata={"format": "pt"}, order=sorted(tensors, reverse=True))
        return 0
    if command == "random":
        write_file(argv[3], random_tensors(int(argv[2])))
        return 0
    problem = check(argv[2]) if command == "check" else same(argv[2], argv[3])
    if problem:
        print(f"safetensors_reference.py {command}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
