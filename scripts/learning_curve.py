"""Learning curves of training runs: validation BLEU and loss at fixed update counts, with the target
tokens trained on and the minutes of training by then, read from each run's TensorBoard events.

    python scripts/learning_curve.py runs/multi30k_gru runs/multi30k_transformer [--steps 250 500 1000]

At each update count S a run shows its latest validation at or before S (the table names its step),
and only if the run got to S (validated at S or later): a run that stopped earlier has no figure
there, so nothing is extrapolated. Tokens are summed over all ranks; minutes are wall clock from the
first update, validations included. Prints a table, then (last line) one JSON object.
"""

import argparse
import json
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from nmt.errors import NmtError

STEPS = [250, 500, 1000, 2000, 4000, 8000]
# What each point reports: its column in the table and the TensorBoard tag it is read from.
FIGURES = {"bleu": "valid/bleu", "loss": "valid/loss", "target_tokens": "train/target_tokens",
           "minutes": "train/minutes"}


def read_scalars(run_dir: Path) -> dict[str, dict[int, float]]:
    """Every scalar of a run's TensorBoard events, tag -> step -> value. A resumed run's events come
    from several files, read oldest first: where a run killed after its last checkpoint had logged
    steps that its resumed run logged again, the later value holds."""
    events = run_dir / "tensorboard"
    if not events.is_dir():
        raise NmtError(f"{run_dir}: no tensorboard/ directory; give the run directory of an nmt.train run")
    accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})  # 0: keep every event
    accumulator.Reload()
    scalars = {tag: {event.step: event.value for event in accumulator.Scalars(tag)}
               for tag in accumulator.Tags()["scalars"]}
    if not scalars.get(FIGURES["loss"]):
        raise NmtError(f"{events}: no validation ({FIGURES['loss']}) logged yet; train until the first "
                       "trainer.valid_every steps have passed")
    return scalars


def curve(scalars: dict[str, dict[int, float]], steps: list[int]) -> list[dict]:
    """One point per update count: the validation it shows (`valid_step`, None where the run has none)
    and the figures logged at that step (None where the run did not log one, e.g. no BLEU)."""
    validated = sorted(scalars[FIGURES["loss"]])
    points = []
    for step in steps:
        earlier = [v for v in validated if v <= step]
        valid_step = earlier[-1] if earlier and validated[-1] >= step else None
        figures = {name: scalars.get(tag, {}).get(valid_step) for name, tag in FIGURES.items()}
        if figures["target_tokens"] is not None:  # TensorBoard keeps scalars as float32
            figures["target_tokens"] = round(figures["target_tokens"])
        points.append({"updates": step, "valid_step": valid_step} | figures)
    return points


def _cell(value: float | None, form: str) -> str:
    return "-" if value is None else format(value, form)


def print_table(runs: list[dict]) -> None:
    for run in runs:
        print(f"{run['run']} (validated up to step {run['last_valid_step']})")
        print(f"{'updates':>8} {'valid step':>10} {'BLEU':>6} {'loss':>7} {'target tokens':>14} {'minutes':>8}")
        for p in run["points"]:
            tokens = "-" if p["target_tokens"] is None else f"{p['target_tokens']:,}"
            print(f"{p['updates']:>8} {_cell(p['valid_step'], 'd'):>10} {_cell(p['bleu'], '.2f'):>6} "
                  f"{_cell(p['loss'], '.3f'):>7} {tokens:>14} {_cell(p['minutes'], '.1f'):>8}")
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories (runs/NAME), each with its tensorboard/")
    parser.add_argument("--steps", nargs="+", type=int, default=STEPS, help="update counts to report")
    args = parser.parse_args()
    try:
        runs = []
        for run_dir in map(Path, args.runs):
            scalars = read_scalars(run_dir)
            runs.append({"run": str(run_dir), "last_valid_step": max(scalars[FIGURES["loss"]]),
                         "points": curve(scalars, sorted(args.steps))})
    except NmtError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print_table(runs)
    print(json.dumps({"steps": sorted(args.steps), "runs": runs}))


if __name__ == "__main__":
    main()
