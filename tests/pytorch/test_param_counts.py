"""Parameter counts and layer shapes of every example, cnnc against PyTorch.

    python3 test_param_counts.py CNNC       (or --torch-only)

For each examples/*.net: `cnnc check` prints a layer table and a total; the
same network built with torch.nn (netfile.py) must have the same trainable
parameter count and the same output shape at every layer. Known counts from
torchvision and NET-FORMAT.md anchor the torch side too.
"""

import pathlib
import re
import subprocess
import sys

import netfile

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Published counts: torchvision's models and the language spec's examples.
ANCHORS = {
    "lenet5": 61_706,
    "vgg19": 143_667_240,
    "alexnet": 61_100_840,
    "resnet18": 11_689_512,
}


def cnnc_table(cnnc, path):
    out = subprocess.run([cnnc, "check", str(path)], capture_output=True, text=True, check=True).stdout
    lines = out.strip().splitlines()
    total = re.fullmatch(r"total: ([\d,]+) parameters, [\d.]+ MFLOPs per example", lines[-1])
    if not total:
        raise AssertionError(f"unexpected last line: {lines[-1]!r}")
    shapes = {}
    for line in lines:
        words = line.split()
        if len(words) == 5 and re.fullmatch(r"\d+(x\d+)*", words[2]):
            shapes[words[0]] = words[2]
    return int(total.group(1).replace(",", "")), shapes


def main(argv):
    torch_only = "--torch-only" in argv
    cnnc = None if torch_only else argv[1]
    passed = failed = 0
    for path in sorted((ROOT / "examples").glob("*.net")):
        net = netfile.load(path)
        model = netfile.build_model(net)
        torch_count = sum(p.numel() for p in model.parameters())
        problems = []
        if net.name in ANCHORS and torch_count != ANCHORS[net.name]:
            problems.append(f"torch counts {torch_count:,}, published {ANCHORS[net.name]:,}")
        if cnnc:
            count, shapes = cnnc_table(cnnc, path)
            if count != torch_count:
                problems.append(f"cnnc counts {count:,}, torch {torch_count:,}")
            for layer in net.layers:
                torch_shape = "x".join(str(d) for d in model.shapes[layer.name][1:])
                if shapes.get(layer.name) != torch_shape:
                    problems.append(f"{layer.name}: cnnc {shapes.get(layer.name)}, torch {torch_shape}")
        status = "FAIL" if problems else "ok"
        print(f"{status:4} {net.name:20} {torch_count:>13,} parameters" + "".join(f"\n     {p}" for p in problems))
        failed += bool(problems)
        passed += not problems
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
