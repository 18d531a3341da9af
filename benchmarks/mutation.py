"""Mutation testing of the analyzer's incident, store, decode and receiver modules (mutmut).

Slow, and not part of CI or `make test`: each module's mutants run against the tests that
cover it (``MODULES``), one module at a time. Prints the kill rate per module and lists the
survivors with their diffs. Mutants listed in ``mutation_equivalent.txt`` (beside this file)
cannot change any output; they are shown apart and left out of the score.

    .venv/bin/pip install -e '.[mutation]'
    .venv/bin/python benchmarks/mutation.py                       # every module
    .venv/bin/python benchmarks/mutation.py analysis/_localize.py  # one (or a few)
    .venv/bin/python benchmarks/mutation.py --sample 60            # 60 mutants a module

mutmut names a mutant after its module's path, and the package's folders are not where the
package's name says (``faultlens.analyzer`` is ``analyzer/``): each module runs in a stage,
``.faultlens/mutation/<module>/``, laid out as the package is imported
(``faultlens/analyzer/...``), with the tests beside it. The mutated copy comes first on
``sys.path`` (and on ``PYTHONPATH``, for the receiver the tests run as a subprocess).
The receiver's functions, which the tests also run in that subprocess where mutmut's
tracing does not see them, run the module's whole test list.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENT = Path(__file__).resolve().with_name("mutation_equivalent.txt")
STAGES = ROOT / ".faultlens" / "mutation"
T = "tests/analyzer/"

_INCIDENT = [
    T + "test_culprit_ranking.py",
    T + "test_blast_radius.py",
    T + "test_silent_requests.py",
    T + "test_update_coupling.py",
    T + "test_pinned_outputs.py",
]
_DECODE = [
    T + "test_decode.py",
    T + "test_decode_fast.py",
    T + "test_ingest.py",
    T + "test_store.py",
    T + "test_receiver.py",
    T + "test_receiver_answers.py",
    T + "test_metrics_ingest.py",
]
# Module (under analyzer/) -> the tests that cover it; and, for a module of which only a
# part is in scope, the functions whose mutants count.
MODULES: dict[str, list[str]] = {
    "analysis/_evidence.py": _INCIDENT,
    "analysis/_localize.py": _INCIDENT,
    "analysis/_isolation.py": _INCIDENT,
    "analysis/_impact.py": _INCIDENT,
    "analysis/_coupling.py": [T + "test_update_coupling.py", T + "test_pinned_outputs.py"],
    "analysis/_detect.py": [T + "test_culprit_ranking.py", T + "test_pinned_outputs.py"],
    # The evidence texts of the incident page, the report and the JSON's ``evidence`` lists.
    "analysis/_describe.py": [*_INCIDENT, T + "test_incidents_contract.py"],
    "store/_write.py": [T + "test_store.py", T + "test_ingest.py", T + "test_receiver.py"],
    "decode/_columns.py": _DECODE,
    "decode/_otlp_json.py": _DECODE,
    "decode/_otlp_proto.py": _DECODE,
    "decode/_json_values.py": _DECODE,
    "decode/_proto_values.py": _DECODE,
    "decode/_scopes.py": _DECODE,
    "decode/_identity.py": _DECODE,
    "serve/_receiver.py": [
        T + "test_receiver.py",
        T + "test_receiver_answers.py",
        T + "test_store.py",
    ],
    "serve/_grpc.py": [T + "test_receiver_answers.py"],
    "serve/_ingest.py": [
        T + "test_decode.py",
        T + "test_ingest.py",
        T + "test_ingest_cache.py",
        T + "test_metrics_ingest.py",
    ],
}
FUNCTIONS: dict[str, list[str]] = {
    # The incident's update coupling; library coupling is a browsing table.
    "analysis/_coupling.py": ["update_coupling"],
}

# Modules the tests also run in a subprocess (``faultlens collect``), where mutmut's tracing
# of which test reaches which function does not see them.
SUBPROCESS = {"serve/_receiver.py"}
MODULE_SECONDS = 1800  # a module's run stops here (its mutants so far still count)
_ALIVE = ("survived", "no tests", "suspicious")
_NOTHING = "faultlens.analyzer.nothing__mutmut_0"  # a mutant name that matches none


@dataclass
class Result:
    module: str
    status: dict[str, str] = field(default_factory=dict)  # mutant -> mutmut's status
    sampled: int | None = None
    seconds: float = 0.0


def _dotted(module: str) -> str:
    return "faultlens.analyzer." + module.removesuffix(".py").replace("/", ".")


def _stage(module: str, tests: list[str], *, keep: bool) -> Path:
    """The module's stage: the package as it is imported, the tests, the sample data."""
    stage = STAGES / module.removesuffix(".py").replace("/", "-")
    if stage.exists() and not keep:
        shutil.rmtree(stage)
    if stage.exists():
        return stage
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "analyzer", stage / "faultlens" / "analyzer", ignore=ignore)
    shutil.copytree(ROOT / "tests", stage / "tests", ignore=ignore)
    pytest_opts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    config = {
        "source_paths": ["faultlens/analyzer"],
        "only_mutate": [f"faultlens/analyzer/{module}"],
        "also_copy": ["sample_traces"],
        "pytest_add_cli_args_test_selection": tests,
        "pytest_add_cli_args": ["-p", "no:cacheprovider"],
    }
    options = dict(pytest_opts["ini_options"], timeout=120)  # a mutant that hangs fails
    (stage / "sample_traces").symlink_to(ROOT / "sample_traces")
    # There before mutmut starts: Python caches a PYTHONPATH entry that does not exist as
    # "nothing here", and would import the package from the install instead.
    (stage / "mutants").mkdir()
    (stage / "pyproject.toml").write_text(
        "[tool.mutmut]\n"
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in config.items())
        + "\n[tool.pytest.ini_options]\n"
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in options.items())
    )
    return stage


def _mutmut(stage: Path, args: list[str], *, seconds: float) -> str:
    """Run mutmut in the stage, in its own process group: whatever it started (a receiver
    a killed test left behind) ends with it."""
    env = dict(os.environ, PYTHONPATH=str(stage / "mutants"))
    exe = Path(sys.executable).with_name("mutmut")
    proc = subprocess.Popen(
        [str(exe), *args],
        cwd=stage,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)  # mutmut records what it has, then stops
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return out


def _prepare(stage: Path, module: str) -> list[str]:
    """Make the module's mutants and learn which tests reach which function (the module's
    tests run once); the mutants' names."""
    # `run` makes the mutants and the stats, then stops on a name that matches no mutant:
    # mutmut has no command that only prepares.
    out = _mutmut(stage, ["run", _NOTHING], seconds=MODULE_SECONDS)
    if "nothing matches" not in out:
        raise SystemExit(f"{stage}: mutmut did not prepare the mutants:\n{out[-3000:]}")
    return sorted(_statuses(stage, module))


def _in_scope(module: str, names: list[str]) -> list[str]:
    if module not in FUNCTIONS:
        return names
    wanted = tuple(f"{_dotted(module)}.x_{f}__mutmut_" for f in FUNCTIONS[module])
    return [n for n in names if n.startswith(wanted)]


def _widen(stage: Path, names: list[str]) -> None:
    """Every function of the module runs every test of its list: the tests also run it in a
    subprocess (the receiver), where mutmut's per-test tracing does not see it."""
    path = stage / "mutants" / "mutmut-stats.json"
    stats = json.loads(path.read_text())
    by_function = stats["tests_by_mangled_function_name"]
    every = set(stats["duration_by_test"])  # the module's tests, as the stats ran them
    for name in names:
        function = name.rsplit("__mutmut_", 1)[0]
        by_function[function] = sorted(every | set(by_function.get(function, ())))
    path.write_text(json.dumps(stats, indent=1))


def _statuses(stage: Path, module: str) -> dict[str, str]:
    meta = stage / "mutants" / "faultlens" / "analyzer" / (module + ".meta")
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    from mutmut.stats import status_by_exit_code

    return {name: status_by_exit_code[code] for name, code in codes.items()}


def _diffs(stage: Path, names: list[str]) -> dict[str, str]:
    """Each mutant's changed lines (mutmut's diff, read in the stage)."""
    from mutmut.configuration import reset_config
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    here = Path.cwd()
    os.chdir(stage)
    reset_config()
    try:
        return {
            name: "\n".join(
                line
                for line in get_diff_for_mutant(name).splitlines()
                if line[:1] in "+-" and not line.startswith(("+++", "---"))
            )
            for name in names
        }
    finally:
        os.chdir(here)
        reset_config()


def _pair(diff: str) -> str:
    """A mutant's diff as ``removed => added``: each side's lines stripped and joined, runs
    of spaces as one, a comma before a closing parenthesis dropped."""
    sides: dict[str, list[str]] = {"-": [], "+": []}
    for line in diff.splitlines():
        sides[line[0]].append(" ".join(line[1:].split()))
    removed, added = (re.sub(r",\s*\)", ")", "".join(sides[k])) for k in "-+")
    return f"{removed} => {added}"


def _equivalents() -> tuple[dict[str, tuple[str, str]], list[tuple[re.Pattern, str]]]:
    """From ``mutation_equivalent.txt``: mutant -> (its pair, why it cannot change any
    output); and the rules, (pattern over a pair, why)."""
    named: dict[str, tuple[str, str]] = {}
    rules: list[tuple[re.Pattern, str]] = []
    for line in EQUIVALENT.read_text().splitlines() if EQUIVALENT.exists() else []:
        if line.strip() and not line.startswith("#"):
            key, what, why = (part.strip() for part in line.split("\t"))
            if key == "rule":
                rules.append((re.compile(what), why))
            else:
                named[key] = (what, why)
    return named, rules


def _why_equivalent(name: str, diff: str, named: dict, rules: list) -> str | None:
    pair = _pair(diff)
    if name in named:
        what, why = named[name]
        if what == pair:
            return why
        print(f"stale entry in {EQUIVALENT.name}: {name} is now {pair!r}")
    return next((why for rule, why in rules if rule.fullmatch(pair)), None)


def run_module(module: str, *, sample: int | None, seed: int, keep: bool, jobs: int) -> Result:
    tests = MODULES[module]
    started = time.monotonic()
    stage = _stage(module, tests, keep=keep)
    every = _in_scope(module, _prepare(stage, module))
    names = every
    if module in SUBPROCESS:
        _widen(stage, names)
    result = Result(module)
    if sample is not None and sample < len(names):
        names = sorted(random.Random(seed).sample(names, sample))
        result.sampled = len(every)
    left = MODULE_SECONDS - (time.monotonic() - started)
    _mutmut(stage, ["run", "--max-children", str(jobs), *names], seconds=max(left, 60))
    status = _statuses(stage, module)
    result.status = {n: status.get(n, "not checked") for n in names}
    result.seconds = time.monotonic() - started
    return result


def report(results: list[Result]) -> int:
    named, rules = _equivalents()
    total_killed = total_counted = 0
    lines = []
    survivors: list[tuple[str, str]] = []
    for r in results:
        stage = STAGES / r.module.removesuffix(".py").replace("/", "-")
        counts: dict[str, int] = {}
        eq = 0
        alive = [n for n, s in r.status.items() if s in _ALIVE]
        diffs = _diffs(stage, alive)
        for name, status in r.status.items():
            if status in _ALIVE and _why_equivalent(name, diffs[name], named, rules):
                eq += 1
                continue
            counts[status] = counts.get(status, 0) + 1
            if status in _ALIVE:
                survivors.append((name, diffs[name]))
        killed = counts.get("killed", 0) + counts.get("timeout", 0)
        counted = sum(n for s, n in counts.items() if s != "not checked")
        total_killed += killed
        total_counted += counted
        rate = f"{killed / counted:.1%}" if counted else "-"
        sampled = f" (sample of {r.sampled})" if r.sampled else ""
        lines.append(
            f"{r.module:24} {killed:4}/{counted:<4} killed {rate:>6}{sampled}; "
            f"equivalent {eq}; {', '.join(f'{s} {n}' for s, n in sorted(counts.items()))}; "
            f"{r.seconds:.0f} s"
        )
    if survivors:
        print("\nsurvivors:")
        for name, diff in survivors:
            print(f"  {name}\n" + "\n".join(f"      {d}" for d in diff.splitlines()))
    print("\nkill rate per module (killed / non-equivalent mutants; timeouts count as killed):")
    for line in lines:
        print("  " + line)
    if total_counted:
        print(f"  {'all':24} {total_killed:4}/{total_counted:<4} killed "
              f"{total_killed / total_counted:.1%}")  # fmt: skip
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("modules", nargs="*", help=f"under analyzer/ (default: all): {list(MODULES)}")
    ap.add_argument("--sample", type=int, help="mutants per module, drawn at random")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--jobs", type=int, default=2, help="mutants tested at once")
    ap.add_argument("--keep", action="store_true", help="reuse the stages (and their results)")
    ap.add_argument("--report", action="store_true", help="only report the kept stages' results")
    args = ap.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        ap.error(f"not a module of the mutation run: {unknown}")
    results = []
    for module in args.modules or list(MODULES):
        if args.report:
            stage = STAGES / module.removesuffix(".py").replace("/", "-")
            status = _statuses(stage, module)
            results.append(Result(module, {n: status[n] for n in _in_scope(module, list(status))}))
            continue
        print(f"{module}: ...", flush=True)
        r = run_module(module, sample=args.sample, seed=args.seed, keep=args.keep, jobs=args.jobs)
        results.append(r)
        print(f"{module}: {len(r.status)} mutants in {r.seconds:.0f} s", flush=True)
    return report(results)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
