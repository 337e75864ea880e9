"""Parameter counts and layer shapes of every example, cnnc against PyTorch.

    python3 test_param_counts.py CNNC       (or --torch-only)

For each examples/*.net: `cnnc check` prints a layer table (layer, kind,
output, parameters, MFLOPs) and a total; the same network built with torch.nn
(netfile.py) must have the same layers in the same order, the same output
shape and parameter count at each, and the same total. Published counts
(torchvision's models, NET-FORMAT.md's example) anchor the torch side too.
"""

import pathlib
import re
import subprocess
import sys

import netfile

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Published counts: torchvision's models and the language spec's example.
ANCHORS = {
    "lenet5": 61_706,
    "vgg19": 143_667_240,
    "alexnet": 61_100_840,
    "resnet18": 11_689_512,
}

TOTAL = re.compile(r"total: ([0-9,]+) parameters, [0-9.]+ MFLOPs per example")


def cnnc_table(cnnc, path):
    """(total, [(layer, kind, output, parameters)]) from `cnnc check`;
    AssertionError when cnnc fails or prints something else."""
    run = subprocess.run([cnnc, "check", str(path)], capture_output=True, text=True)
    if run.returncode != 0:
        raise AssertionError(f"cnnc check exits {run.returncode}: {run.stderr.strip()}")
    lines = run.stdout.rstrip("\n").splitlines()
    total = TOTAL.fullmatch(lines[-1]) if lines else None
    if not total:
        raise AssertionError(f"unexpected last line: {lines[-1] if lines else ''!r}")
    header = next((i for i, line in enumerate(lines) if line.split() == ["layer", "kind", "output", "parameters",
                                                                           "MFLOPs"]), None)
    if header is None:
        raise AssertionError("no layer table header in cnnc's output")
    rows = []
    for line in lines[header + 1:]:
        if not line.strip():
            break
        words = line.split()
        if len(words) != 5:
            raise AssertionError(f"unexpected table row: {line!r}")
        rows.append((words[0], words[1], words[2], int(words[3].replace(",", ""))))
    return int(total.group(1).replace(",", "")), rows


def compare(cnnc, path, net, model):
    """Differences between cnnc's table and the torch model, as strings."""
    problems = []
    total, rows = cnnc_table(cnnc, path)
    torch_total = netfile.parameter_count(model)
    if total != torch_total:
        problems.append(f"cnnc counts {total:,} parameters, torch {torch_total:,}")
    want = [(layer.name, layer.kind, netfile.fmt(model.shapes[layer.name][1:]), model.layer_parameters(layer.name))
            for layer in net.layers]
    if [row[0] for row in rows] != [row[0] for row in want]:
        problems.append(f"cnnc's layers {[row[0] for row in rows]}, torch's {[row[0] for row in want]}")
    cnnc_rows = {row[0]: row for row in rows}
    for name, kind, shape, params in want:
        got = cnnc_rows.get(name)
        if got and got[1:] != (kind, shape, params):
            problems.append(f"{name}: cnnc {got[1]} {got[2]} {got[3]:,} parameters, "
                            f"torch {kind} {shape} {params:,} parameters")
    return problems


def check(path, cnnc):
    """(network name, torch parameter count, problems) for one .net file."""
    try:
        net = netfile.load(path)
    except ValueError as e:
        return path.stem, 0, [f"netfile rejects it: {e}"]
    model = netfile.build_model(net)
    count = netfile.parameter_count(model)
    problems = []
    if net.name in ANCHORS and count != ANCHORS[net.name]:
        problems.append(f"torch counts {count:,}, published {ANCHORS[net.name]:,}")
    if cnnc:
        try:
            problems += compare(cnnc, path, net, model)
        except AssertionError as e:
            problems.append(str(e))
    return net.name, count, problems


def main(argv):
    torch_only = "--torch-only" in argv
    args = [a for a in argv[1:] if a != "--torch-only"]
    if not torch_only and len(args) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    cnnc = None if torch_only else args[0]
    paths = sorted((ROOT / "examples").glob("*.net"))
    passed = failed = 0
    for path in paths:
        name, count, problems = check(path, cnnc)
        status = "FAIL" if problems else "ok"
        print(f"{status:4} {name:20} {count:>13,} parameters" + "".join(f"\n     {p}" for p in problems), flush=True)
        failed += bool(problems)
        passed += not problems
    missing = set(ANCHORS) - {path.stem for path in paths}
    if missing:
        print(f"FAIL missing examples: {', '.join(sorted(missing))}")
        failed += len(missing)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
