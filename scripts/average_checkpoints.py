"""Average the parameters of a run's last N checkpoints into one (Vaswani et al. 2017, sec. 6.1).

    python scripts/average_checkpoints.py runs/NAME/checkpoints --last 5 --output averaged.pt
    python scripts/average_checkpoints.py runs/NAME/checkpoints --last 5 --until best --output averaged.pt
    python scripts/average_checkpoints.py a.pt b.pt c.pt --output averaged.pt
"""

import argparse
import sys
from pathlib import Path

from nmt.choices import AverageUntil
from nmt.errors import NmtError
from nmt.models.checkpoint import average_checkpoints, save_checkpoint
from nmt.training.state import best_checkpoint_step, write_average


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="a checkpoints directory, or checkpoint files")
    parser.add_argument("--last", type=int, default=5, help="with a directory: how many step_N.pt")
    parser.add_argument("--until", choices=[AverageUntil.last.value, AverageUntil.best.value], default="last",
                        help="with a directory: the N end at the newest step_N.pt or at best.pt's")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    try:
        if len(args.inputs) == 1 and Path(args.inputs[0]).is_dir():
            # What training writes as checkpoints/average.pt with trainer.average_last=N, average_until=U.
            directory = Path(args.inputs[0])
            end = best_checkpoint_step(directory) if AverageUntil(args.until) is AverageUntil.best else None
            paths = write_average(directory, args.last, Path(args.output), end)["averaged_from"]
        else:
            paths = args.inputs
            save_checkpoint(Path(args.output), average_checkpoints([Path(p) for p in paths]))
    except NmtError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"averaged {len(paths)} checkpoints: {', '.join(Path(p).name for p in paths)} -> {args.output}")


if __name__ == "__main__":
    main()
