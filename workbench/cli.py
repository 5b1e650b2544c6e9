"""``python -m workbench``: the command line over the library.

Each command is a function registered with ``@command``; later modules add their own
commands the same way (each research line's ``cli`` module is imported on start-up). A
``WorkbenchError`` prints as one line on stderr and exits with status 2.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
import time
from pathlib import Path
from typing import Callable

from workbench.errors import WorkbenchError
from workbench.registry import Registry

from workbench.paths import REPO_ROOT  # noqa: E402
COMMANDS: Registry[Callable] = Registry("command")


def command(name: str, help: str):
    """Register ``fn(subparsers) -> parser`` building the parser of one top-level command."""

    def add(fn):
        fn.help = help
        return COMMANDS.register(name)(fn)

    return add


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


# -- train -------------------------------------------------------------------------------


@command("train", "train a model from a YAML config (or run a queued job's directory)")
def _train_parser(sub):
    from workbench import lines

    names = ", ".join(lines.presets()) or "none"
    p = sub.add_parser("train", help=_train_parser.help, description=(
        "Train from CONFIG with optional key=value overrides (e.g. train.lr=1e-4). "
        "Runs in the foreground with a progress bar unless --detach is given. "
        f"Presets: {names}."))
    p.add_argument("config", nargs="?", help="a YAML config file or a preset name "
                                             "(workbench/lines/*/configs/): " + names)
    p.add_argument("overrides", nargs="*", help="key=value overrides, nested keys with dots")
    p.add_argument("--detach", action="store_true", help="queue as a background job and return")
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="data-parallel processes (torchrun + DDP; sets train.nproc): one per GPU, or CPU "
                        "processes with gloo")
    p.add_argument("--run-dir", help="run an existing run directory (used by the job manager)")
    p.add_argument("--resume", action="store_true", help="with --run-dir: continue from checkpoints/last.pt")
    p.add_argument("--runs", help="runs directory (default: $WORKBENCH_RUNS or ./runs)")
    p.set_defaults(func=cmd_train)
    return p


def cmd_train(args) -> int:
    from workbench.runs import JobManager, RunStore

    if args.run_dir:  # a background job: beat before any heavy import (torch)
        from workbench.train.job import run_dir_job

        return run_dir_job(args.run_dir, args.resume)
    from workbench.experiments import create_experiment, load_config
    from workbench.train.trainer import Trainer

    if not args.config:
        from workbench import lines

        raise WorkbenchError("train needs a CONFIG file or a preset name (one of "
                             f"{sorted(lines.presets())}) or --run-dir")
    overrides = list(args.overrides) + ([f"train.nproc={args.nproc}"] if args.nproc is not None else [])
    cfg = load_config(args.config, overrides)
    from workbench.train.distributed import check_nproc, from_env

    ctx = from_env()
    if ctx.enabled:  # under torchrun (e.g. several nodes): its world size, one GPU per local rank
        check_nproc(ctx.world, cfg.train.batch_size, "cpu", name="torchrun's WORLD_SIZE")
    elif cfg.train.nproc > 1:
        check_nproc(cfg.train.nproc, cfg.train.batch_size, cfg.train.device)
    store = RunStore(args.runs)
    if ctx.enabled:  # torchrun ... -m workbench train CONFIG
        run = store.create(cfg) if ctx.main else None
        result = Trainer(create_experiment(cfg), run, progress_bar=run is not None).fit()
        if run is not None:
            _print_json({"run": run.id, **result})
        return 0
    if args.detach:
        run = JobManager(store).submit(cfg)
        print(f"queued {run.id} (state: {run.state}); follow with: python -m workbench runs show {run.id}")
        return 0
    run = store.create(cfg)
    print(f"run {run.id} in {run.path}", file=sys.stderr)
    if cfg.train.nproc > 1:  # the foreground job supervises torchrun, as a background job would
        from workbench.train.job import run_job

        code = run_job(run, False)
        _print_json({"run": run.id, **{k: run.read_status().get(k) for k in ("state", "step", "final", "error")}})
        return code
    run.update_status(state="running", pid=os.getpid())
    result = Trainer(create_experiment(cfg), run).fit()
    _print_json({"run": run.id, **result})
    return 0


# -- runs --------------------------------------------------------------------------------


@command("runs", "list, inspect, stop, resume or delete runs")
def _runs_parser(sub):
    p = sub.add_parser("runs", help=_runs_parser.help)
    p.add_argument("--runs", help="runs directory (default: $WORKBENCH_RUNS or ./runs)")
    rs = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    rs.add_parser("list", help="one line per run, newest first")
    for name, text in [("show", "status, config and last metrics of a run"),
                       ("stop", "stop a running or queued run (SIGTERM, checkpoint)"),
                       ("resume", "resume a stopped/crashed run from checkpoints/last.pt"),
                       ("delete", "delete a run that is not running")]:
        rs.add_parser(name, help=text).add_argument("run_id", metavar="RUN")
    p.set_defaults(func=cmd_runs)
    return p


def run_summary(run, status: dict) -> dict:
    from workbench.runs.progress import describe

    age = time.time() - status.get("created", time.time())
    return {"id": run.id, "kind": status.get("kind"), "state": status.get("state"),
            "progress": status.get("progress"), "step": status.get("step"),
            "phase": status.get("phase") if status.get("state") == "running" else None,
            "now": describe(status), "unresponsive": bool(status.get("unresponsive")),
            "age_s": round(age), "error": status.get("error")}


def cmd_runs(args) -> int:
    from workbench.runs import JobManager, RunStore

    jobs = JobManager(RunStore(args.runs))
    if args.action == "list":
        rows = [run_summary(r, s) for r, s in jobs.statuses()]
        if not rows:
            print(f"no runs in {jobs.store.root}")
        for row in rows:
            prog = f"{100 * (row['progress'] or 0):5.1f}%"
            state = "unresponsive" if row["unresponsive"] else row["state"]
            print(f"{row['id']:<50} {state:<12} {prog}  {row['now']}")
        return 0
    if args.action == "show":
        run = jobs.store.get(args.run_id)
        status = jobs.refresh(run)
        records, _ = run.read_metrics()
        _print_json({"id": run.id, "status": status, "config": run.config_dict(),
                     "last_metrics": records[-3:]})
    elif args.action == "stop":
        status = jobs.stop(args.run_id)
        print(f"{args.run_id}: {status.get('state')}")
    elif args.action == "resume":
        run = jobs.resume(args.run_id)
        print(f"{args.run_id}: {run.state}")
    elif args.action == "delete":
        jobs.delete(args.run_id)
        print(f"deleted {args.run_id}")
    return 0


# -- eval --------------------------------------------------------------------------------


@command("eval", "evaluate a run's checkpoint on its validation set")
def _eval_parser(sub):
    p = sub.add_parser("eval", help=_eval_parser.help)
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--runs", help="runs directory (default: $WORKBENCH_RUNS or ./runs)")
    p.set_defaults(func=cmd_eval)
    return p


def cmd_eval(args) -> int:
    from workbench.runs import RunStore
    from workbench.train.evaluate import evaluate_run

    run = RunStore(args.runs).get(args.run_id)
    _print_json({"run": run.id, "checkpoint": args.checkpoint, **evaluate_run(run, args.checkpoint)})
    return 0


# -- bench -------------------------------------------------------------------------------


def benchmark_modules() -> dict[str, str]:
    """Benchmark name -> module: the core's (``benchmarks/*.py``) and each line's ``bench``."""
    from workbench import lines

    out = {m.name: f"benchmarks.{m.name}" for m in pkgutil.iter_modules([str(REPO_ROOT / "benchmarks")])
           if not m.name.startswith("_")}
    out.update({line.name: f"{line.module}.bench" for line in lines.lines() if line.has("bench")})
    return dict(sorted(out.items()))


def list_benchmarks() -> list[str]:
    return list(benchmark_modules())


@command("bench", "run a benchmark and print its figures as JSON")
def _bench_parser(sub):
    p = sub.add_parser("bench", help=_bench_parser.help)
    p.add_argument("name", nargs="?", help="benchmark name; all when omitted")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for smoke tests")
    p.set_defaults(func=cmd_bench)
    return p


def cmd_bench(args) -> int:
    modules = benchmark_modules()
    names = list(modules)
    if args.name and args.name not in names:
        raise WorkbenchError(f"benchmark '{args.name}' not found. Available: {names}")
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    results = {}
    for name in [args.name] if args.name else names:
        results[name] = importlib.import_module(modules[name]).run(quick=args.quick)
    _print_json(results[args.name] if args.name else results)
    return 0


# -- embed -------------------------------------------------------------------------------


@command("embed", "project an embedding set (PCA / UMAP / t-SNE), cached, as a job")
def _embed_parser(sub):
    p = sub.add_parser("embed", help=_embed_parser.help, description=(
        "Project one embedding set of a run or bundle to 2-D or 3-D. The result is cached by the set's "
        "bytes and every parameter: a rerun returns at once. SOURCE: a bundle or run name "
        "(clip-demo, clip-2026...), a label (\"checkpoint: clip-demo\") or an embeddings folder; "
        "'list' lists the sets."))
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("--set", dest="set_name", default=None, help="the set's name (default: the first)")
    p.add_argument("--method", default="pca", choices=("pca", "umap", "tsne"))
    p.add_argument("--dims", type=int, default=2, choices=(2, 3))
    p.add_argument("--metric", default="cosine", choices=("cosine", "euclidean"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-points", type=int, default=0, help="a seeded sample of this many points; 0 = all")
    p.add_argument("--force", action="store_true", help="recompute even when cached")
    p.add_argument("--detach", action="store_true", help="start it as a background job and print its key")
    p.add_argument("--label", default=None, help=argparse.SUPPRESS)  # the source label a launched job reports
    p.add_argument("--runs", default=None, help="runs directory (default: $WORKBENCH_RUNS or ./runs)")
    p.set_defaults(func=cmd_embed)
    return p


def cmd_embed(args) -> int:
    from dataclasses import replace

    from workbench.embeddings import jobs
    from workbench.embeddings.sets import find_set, list_sets

    if args.source == "list":
        _print_json([{"source": r.source, "set": r.name, "folder": str(r.folder)} for r in list_sets(args.runs)])
        return 0
    ref = find_set(args.source, args.set_name, args.runs)
    if args.label:
        ref = replace(ref, source=args.label)
    params = jobs.Params(args.method, args.dims, args.metric, args.seed, args.max_points).check()
    if args.detach:
        key = jobs.launch(ref, params)
        _print_json({"key": key, "folder": str(jobs.job_dir(key)), **jobs.read_status(key)})
        return 0
    key, status = jobs.run(ref, params, force=args.force)
    result = jobs.load_result(key) if status.get("state") == "done" else {}
    result.pop("coords", None), result.pop("rows", None)
    _print_json({"key": key, "state": status.get("state"), "cached": bool(status.get("cached")), **result})
    return 0 if status.get("state") == "done" else 1


# -- data --------------------------------------------------------------------------------


@command("data", "build the offline demo datasets and static web assets")
def _data_parser(sub):
    p = sub.add_parser("data", help=_data_parser.help)
    ds = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = ds.add_parser("build-demo", help="build every missing demo dataset under data/ and static/")
    b.add_argument("--only", nargs="*", help="dataset names to build (default: all): cities, gallery, "
                                              "geo-captions, geo-patches, photos, static")
    b.add_argument("--force", action="store_true", help="rebuild even if present")
    b.add_argument("--root", default="data", help="output directory (default: data)")
    p.set_defaults(func=cmd_data)
    return p


def cmd_data(args) -> int:
    from workbench.data.builders import build_all

    _print_json(build_all(Path(args.root), only=args.only, force=args.force))
    return 0


# -- tune --------------------------------------------------------------------------------


@command("tune", "run or join an Optuna study over any line (YAML spec); best config")
def _tune_parser(sub):
    p = sub.add_parser("tune", help=_tune_parser.help, description=(
        "Run a hyper-parameter study: python -m workbench tune SPEC.yaml [--storage URL]. Every trial is a "
        "run (see the Runs page). On an existing study it resumes; --worker joins a study that another "
        "machine started (same spec, same --storage). 'tune best SPEC' writes best_config.yaml; 'tune stop "
        "NAME' stops a study running here (its trials checkpoint); 'tune list' shows the studies and presets."))
    p.add_argument("spec", metavar="SPEC", help="the study spec YAML or a line's study preset (tune list); or "
                                                "'best SPEC', 'stop NAME', 'list'")
    p.add_argument("rest", nargs="?", default=None, metavar="SPEC", help=argparse.SUPPRESS)
    p.add_argument("--storage", default=None, help="an Optuna RDB URL (postgresql://...) or journal:PATH "
                                                   "(default: <runs>/studies/<name>.journal)")
    p.add_argument("--worker", action="store_true", help="join an existing study (fails if it does not exist)")
    p.add_argument("--launch", action="store_true", help="with 'best': start the full run from best_config.yaml")
    p.add_argument("--runs", default=None, help="runs directory (default: $WORKBENCH_RUNS or ./runs)")
    p.set_defaults(func=cmd_tune)
    return p


def cmd_tune(args) -> int:
    from workbench.tuning.spec import load_spec, resolve_spec

    if args.spec == "list":
        from workbench import lines
        from workbench.tuning.driver import list_studies, read_study_status

        studies = {n: read_study_status(n, args.runs).get("state") or "stored" for n in list_studies(args.runs)}
        _print_json({"studies": studies, "presets": {k: str(v) for k, v in lines.presets("studies").items()}})
        return 0
    if args.spec == "stop":
        if not args.rest:
            raise WorkbenchError("usage: python -m workbench tune stop NAME")
        from workbench.tuning.driver import stop_study

        status = stop_study(args.rest, args.runs)
        _print_json({k: status.get(k) for k in ("state", "error", "summary")})
        return 0
    if args.spec == "best":
        if not args.rest:
            raise WorkbenchError("usage: python -m workbench tune best SPEC.yaml [--launch]")
        from workbench.tuning.driver import write_best_config

        spec = load_spec(args.rest)
        out = write_best_config(spec, args.storage, args.runs)
        result = {"best_config": str(out)}
        if args.launch:
            from workbench.experiments import load_config
            from workbench.runs import RunStore
            from workbench.runs.jobs import JobManager

            run = JobManager(RunStore(args.runs)).submit(load_config(out))
            result["run"] = run.id
        _print_json(result)
        return 0
    from workbench.tuning.driver import run_study

    spec = load_spec(args.spec)
    if args.worker:
        from workbench.tuning.storage import open_study

        open_study(spec, args.storage, args.runs, create=False)  # it must exist
    _print_json(run_study(spec, args.storage, args.runs, spec_path=resolve_spec(args.spec)))
    return 0


# -- main --------------------------------------------------------------------------------


def _load_command_modules() -> None:
    """Every research line's ``cli`` module registers its own commands."""
    from workbench import lines

    lines.load_parts("cli")


def build_parser() -> argparse.ArgumentParser:
    _load_command_modules()
    parser = argparse.ArgumentParser(prog="python -m workbench", description=(
        "Geo Workbench: geographic contrastive learning and image geolocation."))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS.list():
        COMMANDS.get(name)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()  # imports the lines' and plugins' command modules
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
