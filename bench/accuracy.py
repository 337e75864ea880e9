"""Training accuracy: cnnc's generated trainer against PyTorch, to the end.

    /usr/bin/python3 bench/accuracy.py [--seeds 1,2] [--datasets fashion-mnist,mnist]
        [--net examples/lenet5.net] [--cnnc build-accuracy/compiler/cnnc]
        [--out build-accuracy/accuracy] [--jobs 2] [--torch-threads 2]
        [--epochs N] [--systems cnnc,pytorch] [--table-only]

Compiles the network with `cnnc NET -o OUT/NET.a --emit lib,header,trainer`
(once), then for every dataset and seed trains it with the generated
trainer (`OUT/NET train --data D --seed S --log CSV --save W --progress
lines`) and with PyTorch (bench/accuracy_torch.py: the same network built by
tests/pytorch/netfile.py, PyTorch's default initialization, the .net file's
optimizer, schedule, batch and epochs, shuffled each epoch). The two sides
start from different random weights (cnnc's generator against torch's), so
compare seeds' means, not single runs.

--jobs runs that many trainings at once (a queue in the order dataset,
seed, system). Each run leaves OUT/DATASET/SYSTEM-sSEED.csv (the trainer's
metrics columns), .log (its output) and .json (wall time, command); a run
whose CSV already has every epoch is not run again unless --rerun, and
--table-only only prints the tables from what is there.

Prints markdown: one row per run (dataset, system, seed, final test
accuracy; for cnnc also the test accuracy PyTorch computes from the saved
weights, accuracy_torch.py --eval-weights; best epoch, mean training
images/s, wall seconds), the mean and
spread (min-max) per dataset and system with the difference of the means,
and the per-epoch test accuracy curves.
"""

import argparse
import csv
import json
import os
import platform
import shlex
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYTHON = "/usr/bin/python3"  # Debian's PyTorch


def read_metrics(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def net_epochs(net):
    sys.path.insert(0, os.path.join(ROOT, "tests", "pytorch"))
    import netfile
    return netfile.load(net).train["epochs"]


def compile_trainer(args, name):
    os.makedirs(args.out, exist_ok=True)
    trainer = os.path.join(args.out, name)
    if os.path.exists(trainer) and not args.rerun:
        return trainer
    command = [args.cnnc, args.net, "-o", os.path.join(args.out, name + ".a"), "--emit", "lib,header,trainer"]
    print("compiling:", " ".join(shlex.quote(c) for c in command), file=sys.stderr, flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    print(f"compiled in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return trainer


def run_one(job, lock):
    with open(job["log"], "w") as log:
        start = time.perf_counter()
        code = subprocess.run(job["command"], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT).returncode
        wall = time.perf_counter() - start
    with open(job["json"], "w") as f:
        json.dump({"command": job["command"], "wall_seconds": wall, "exit": code,
                   "finished": time.strftime("%Y-%m-%d %H:%M:%S")}, f)
    with lock:
        print(f"{job['dataset']} {job['system']} seed {job['seed']}: exit {code}, {wall:.0f} s",
              file=sys.stderr, flush=True)


def torch_evaluation(args, job):
    """PyTorch's test accuracy (%) of the weights a cnnc run saved, cached
    beside them; None without weights."""
    weights = job["csv"][:-len(".csv")] + ".safetensors"
    cache = weights + ".pytorch-eval"
    if not os.path.exists(weights):
        return None
    if not os.path.exists(cache) or os.path.getmtime(cache) < os.path.getmtime(weights):
        out = subprocess.run([PYTHON, os.path.join(HERE, "accuracy_torch.py"), "--net", args.net, "--data",
                              job["dataset"], "--threads", "1", "--eval-weights", weights],
                             capture_output=True, text=True, check=True).stdout
        with open(cache, "w") as f:
            f.write(out.rsplit("test accuracy:", 1)[1].strip().rstrip("%") + "\n")
    with open(cache) as f:
        return float(f.read())


def summary_rows(results, epochs):
    rows = []
    for r in results:
        m = r["metrics"]
        if not m:
            rows.append((r, None))
            continue
        best = max(m, key=lambda e: e["test_accuracy"])
        rows.append((r, {
            "final": 100 * m[-1]["test_accuracy"], "best": 100 * best["test_accuracy"], "best_epoch": int(best["epoch"]),
            "rate": sum(e["images_per_second"] for e in m) / len(m),
            "wall": r["wall"], "complete": len(m) == epochs,
        }))
    return rows


def fmt_rate(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--datasets", default="fashion-mnist,mnist")
    parser.add_argument("--systems", default="cnnc,pytorch")
    parser.add_argument("--net", default=os.path.join(ROOT, "examples", "lenet5.net"))
    parser.add_argument("--cnnc", default=os.path.join(ROOT, "build-accuracy", "compiler", "cnnc"))
    parser.add_argument("--out", default=os.path.join(ROOT, "build-accuracy", "accuracy"))
    parser.add_argument("--jobs", type=int, default=2, help="trainings run at once")
    parser.add_argument("--torch-threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=None, help="default: the .net file's")
    parser.add_argument("--rerun", action="store_true", help="run even where a complete CSV exists")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args(argv)
    args.net, args.out, args.cnnc = (os.path.abspath(p) for p in (args.net, args.out, args.cnnc))
    seeds = [int(s) for s in args.seeds.split(",") if s]
    datasets = [d for d in args.datasets.split(",") if d]
    systems = [s for s in args.systems.split(",") if s]
    for s in systems:
        if s not in ("cnnc", "pytorch"):
            parser.error(f"unknown system '{s}' (cnnc or pytorch)")
    epochs = args.epochs or net_epochs(args.net)
    name = os.path.splitext(os.path.basename(args.net))[0]

    jobs = []
    for dataset in datasets:
        directory = os.path.join(args.out, dataset)
        os.makedirs(directory, exist_ok=True)
        for seed in seeds:
            for system in systems:
                stem = os.path.join(directory, f"{system}-s{seed}")
                if system == "cnnc":
                    command = [os.path.join(args.out, name), "train", "--data", dataset, "--seed", str(seed),
                               "--epochs", str(epochs), "--log", stem + ".csv", "--save", stem + ".safetensors",
                               "--progress", "lines"]
                else:
                    command = [PYTHON, os.path.join(HERE, "accuracy_torch.py"), "--net", args.net,
                               "--data", dataset, "--seed", str(seed), "--epochs", str(epochs),
                               "--threads", str(args.torch_threads), "--log", stem + ".csv"]
                jobs.append({"dataset": dataset, "system": system, "seed": seed, "command": command,
                             "csv": stem + ".csv", "log": stem + ".log", "json": stem + ".json"})

    if not args.table_only:
        todo = [j for j in jobs if args.rerun or len(read_metrics(j["csv"])) != epochs]
        if any(j["system"] == "cnnc" for j in todo):
            compile_trainer(args, name)
        lock, queue = threading.Lock(), list(todo)

        def worker():
            while True:
                with lock:
                    if not queue:
                        return
                    job = queue.pop(0)
                    print(f"start {job['dataset']} {job['system']} seed {job['seed']}", file=sys.stderr, flush=True)
                run_one(job, lock)

        threads = [threading.Thread(target=worker) for _ in range(max(1, args.jobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    results = []
    for j in jobs:
        info = {}
        if os.path.exists(j["json"]):
            with open(j["json"]) as f:
                info = json.load(f)
        results.append({**j, "metrics": read_metrics(j["csv"]), "wall": info.get("wall_seconds", float("nan")),
                        "exit": info.get("exit"), "ran": info.get("command")})

    threads = sorted({r["ran"][r["ran"].index("--threads") + 1] for r in results
                      if r["system"] == "pytorch" and r["ran"] and "--threads" in r["ran"]})
    print(f"{name}, {epochs} epochs; {platform.node()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; PyTorch threads {','.join(threads) or '-'}\n")
    print("| dataset | system | seed | final test accuracy | PyTorch on cnnc's weights | best (epoch) "
          "| images/s | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    rows = summary_rows(results, epochs)
    for r, s in rows:
        if s is None:
            what = "not run" if r["exit"] is None else f"no result (exit {r['exit']}, see {r['log']})"
            print(f"| {r['dataset']} | {r['system']} | {r['seed']} | {what} | | | | |")
            continue
        note = "" if s["complete"] else f" ({len(r['metrics'])} of {epochs} epochs)"
        wall = "-" if s["wall"] != s["wall"] else f"{s['wall']:.0f}"
        check = ""
        if r["system"] == "cnnc" and s["complete"]:
            accuracy = torch_evaluation(args, r)
            check = "" if accuracy is None else f"{accuracy:.2f}%"
        print(f"| {r['dataset']} | {r['system']} | {r['seed']} | {s['final']:.2f}%{note} | {check} | "
              f"{s['best']:.2f}% ({s['best_epoch']}) | {fmt_rate(s['rate'])} | {wall} |")

    print("\n| dataset | system | runs | mean final test accuracy | min-max |")
    print("|---|---|---|---|---|")
    means = {}
    for dataset in datasets:
        for system in systems:
            finals = [s["final"] for r, s in rows
                      if s and s["complete"] and r["dataset"] == dataset and r["system"] == system]
            if finals:
                means[(dataset, system)] = sum(finals) / len(finals)
                print(f"| {dataset} | {system} | {len(finals)} | {means[(dataset, system)]:.2f}% | "
                      f"{min(finals):.2f}-{max(finals):.2f}% |")
    for dataset in datasets:
        if (dataset, "cnnc") in means and (dataset, "pytorch") in means:
            d = means[(dataset, "cnnc")] - means[(dataset, "pytorch")]
            print(f"\n{dataset}: cnnc - PyTorch = {d:+.2f} points (mean of each side's complete runs)")

    print("\nTest accuracy (%) after each epoch:\n")
    print("| dataset | system | seed | " + " | ".join(str(e) for e in range(1, epochs + 1)) + " |")
    print("|---|---|---|" + "---|" * epochs)
    for r in results:
        if r["metrics"]:
            cells = [f"{100 * e['test_accuracy']:.2f}" for e in r["metrics"]]
            cells += [""] * (epochs - len(cells))
            print(f"| {r['dataset']} | {r['system']} | {r['seed']} | " + " | ".join(cells) + " |")
    failed = [r for r in results if r["exit"] not in (None, 0)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
