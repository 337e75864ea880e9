"""The Python side of the safetensors interoperability test: writes and reads
the published format by hand (json + struct + numpy), independent of cnnc.

    safetensors_peer.py write PATH   writes known tensors in F32, F64 and F16
    safetensors_peer.py check PATH   checks the tensors the C++ test wrote
"""

import json
import struct
import sys

import numpy as np


def write(path):
    tensors = [("conv.weight", (np.arange(12, dtype="<f4") * 0.5 - 1).reshape(2, 3, 1, 2), "F32"),
               ("double", np.array([0.25, 1e-3], dtype="<f8"), "F64"),
               ("half", np.array([-1.0, 0.5, 2.0], dtype="<f2"), "F16")]
    header, chunks, offset = {}, [], 0
    for name, array, dtype in tensors:
        data = array.tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def check(path):
    with open(path, "rb") as f:
        blob = f.read()
    (length,) = struct.unpack("<Q", blob[:8])
    if length % 8:
        return False  # the reference pads the header to a multiple of 8
    header = json.loads(blob[8:8 + length])
    data = blob[8 + length:]

    def tensor(name):
        begin, end = header[name]["data_offsets"]
        assert header[name]["dtype"] == "F32"
        return np.frombuffer(data[begin:end], dtype="<f4").reshape(header[name]["shape"])

    return (header["__metadata__"] == {"format": "cnnc"}
            and np.array_equal(tensor("x"), np.arange(6, dtype=np.float32).reshape(2, 3))
            and np.array_equal(tensor("y"), np.array([-7.5], dtype=np.float32)))


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
        sys.exit(0)
    sys.exit(0 if check(sys.argv[2]) else 1)
