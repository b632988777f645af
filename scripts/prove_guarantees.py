"""Prove that the README's Reliability table is backed by tests that fail when a guarantee breaks.

For every row, each named sabotage is applied to a scratch copy of the repository (a text
replacement in one file, so the break is exactly what its name says), the row's tests run
against that copy, and they must fail. Then the same tests must pass on the real code.

    python scripts/prove_guarantees.py [--row N ...] [--list]

Prints a table (row, sabotage, tests, caught or missed), then one JSON line:
{"rows": .., "caught": .., "missed": .., "sabotages": .., "real_code_passes": ..}. A row counts
as caught when every one of its sabotages is. Takes several minutes: the tests kill and resume
real training runs.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Sabotage:
    name: str  # what breaks, as the README's table names it
    file: str
    old: str  # must occur exactly once in `file`
    new: str


@dataclass(frozen=True)
class Row:
    guarantee: str
    tests: tuple[str, ...]
    sabotages: tuple[Sabotage, ...]


ROWS = (
    Row("a killed run resumes exactly",
        ("tests/test_faults.py::test_sigkill_at_random_points_then_resume_equals_an_uninterrupted_run",),
        (Sabotage("a resume does not restore the RNG", "nmt/training/state.py",
                  '    torch.set_rng_state(own["cpu"])\n', ""),
         Sabotage("a resume restarts the epoch's batches", "nmt/training/state.py",
                  '    parts.sampler.load_state_dict(payload["sampler"])\n', ""))),
    Row("nothing is half-written",
        ("tests/test_checkpoint.py::test_save_is_atomic_when_interrupted",
         "tests/test_faults.py::test_a_translation_that_fails_while_writing_leaves_the_previous_output_intact",
         "tests/test_faults.py::test_a_killed_prepare_leaves_nothing_that_looks_complete_and_the_next_one_cleans_up"),
        (Sabotage("checkpoints are written in place", "nmt/models/checkpoint.py",
                  '    with atomic_open(path, "wb") as f:\n        torch.save(payload, f)',
                  '    with open(path, "wb") as f:\n        torch.save(payload, f)'),
         Sabotage("translations are written without the temporary file", "nmt/translate.py",
                  'with atomic_open(config.output, "w") as f:', 'with open(config.output, "w", encoding="utf-8") as f:'),
         Sabotage("the cache is built in place", "nmt/data/cache.py",
                  'building = cache_root / f".{directory.name}.building-{os.getpid()}"', "building = directory"),
         Sabotage("abandoned cache builds are left behind", "nmt/data/cache.py",
                  "    _remove_abandoned_builds(cache_root)\n", ""))),
    Row("SIGTERM/SIGINT saves and exits 0",
        ("tests/test_faults.py::test_a_signal_writes_a_checkpoint_and_exits_cleanly",),
        (Sabotage("the signal handler saves nothing", "nmt/training/trainer.py",
                  "                    self.save(is_best=False, resume_point=True)\n", "                    pass\n"),)),
    Row("a non-finite step is skipped, counted and stops the run",
        ("tests/test_training.py",),
        (Sabotage("the NaN guard is removed", "nmt/training/update.py",
                  "finite = math.isfinite(grad_norm)", "finite = True"),
         Sabotage("a skipped step advances the schedule", "nmt/training/update.py",
                  "        if finite:\n            self.parts.scheduler.step()\n",
                  "        self.parts.scheduler.step()\n        if finite:\n"),
         Sabotage("fp16 never stops on non-finite steps", "nmt/training/update.py",
                  "        if progress.skipped_in_a_row >= self.settings.max_bad_steps:",
                  "        if not self.parts.scaler.is_enabled() and progress.skipped_in_a_row >= "
                  "self.settings.max_bad_steps:"),
         Sabotage("the skip count is not saved", "nmt/training/state.py",
                  '"rng": rng, "progress": asdict(progress)}',
                  '"rng": rng, "progress": asdict(progress) | {"skipped_steps": 0}}'))),
    Row("a full disk is one clear error and last.pt stays intact",
        ("tests/test_faults.py::test_disk_full_is_a_clear_error_and_last_stays_intact",
         "tests/test_faults.py::test_an_unwritable_run_directory_is_one_line"),
        (Sabotage("a failed write is not reported as one", "nmt/training/trainer.py",
                  "        except OSError as error:\n            raise NmtError(f\"cannot write checkpoint",
                  "        except ValueError as error:\n            raise NmtError(f\"cannot write checkpoint"),
         Sabotage("the run directory is not checked before Hydra", "nmt/cli.py",
                  "            _check_run_dir(cfg)\n", "            pass\n"))),
    Row("checkpoints never run code",
        ("tests/test_checkpoint.py::test_a_checkpoint_that_would_run_code_is_refused",
         "tests/test_checkpoint.py::test_a_plain_pickle_is_refused"),
        (Sabotage("weights_only is dropped", "nmt/models/checkpoint.py", "map_location=\"cpu\", weights_only=True)",
                  "map_location=\"cpu\", weights_only=False)"),)),
    Row("resuming another model is refused",
        ("tests/test_checkpoint.py::test_mismatches_say_what_differs",
         "tests/test_cli.py::test_resuming_a_run_with_another_model_is_refused_saying_what_differs"),
        (Sabotage("differences are not checked", "nmt/training/run.py",
                  "        if mismatch:\n", "        if False:\n"),)),
    Row("translate never crashes; one output line per input line",
        ("tests/test_faults.py::test_translate_survives_any_input_with_one_line_out_per_line_in",
         "tests/test_cli.py::test_translate_reads_stdin_and_keeps_empty_lines"),
        (Sabotage("blank lines are dropped from the output", "nmt/translate.py",
                  '+ "\\n" for h in hyps)', '+ "\\n" for h, line in zip(hyps, lines) if line.strip())'),)),
    Row("config errors are one line",
        ("tests/test_cli.py::test_config_errors_are_one_line",
         "tests/test_cli.py::test_a_max_len_the_model_has_no_positions_for_is_one_line_naming_both_keys",
         "tests/test_faults.py::test_config_errors_are_one_line"),
        (Sabotage("composition errors are left to Hydra", "nmt/cli.py",
                  "except (HydraException, OmegaConfBaseException) as error:", "except ZeroDivisionError as error:"),
         Sabotage("a config's own checks are left as tracebacks", "nmt/cli.py",
                  "except NmtError as error:  # a config's own check", "except ZeroDivisionError as error:  #"))),
    Row("a missing or corrupt checkpoint or input is one line",
        ("tests/test_cli.py::test_missing_checkpoint_is_one_line", "tests/test_cli.py::test_corrupt_checkpoint_is_one_line",
         "tests/test_cli.py::test_missing_input_file_is_one_line"),
        (Sabotage("a damaged checkpoint's error escapes", "nmt/models/checkpoint.py",
                  "except (RuntimeError, EOFError, KeyError, ValueError, OSError) as error:",
                  "except ZeroDivisionError as error:"),)),
    Row("the service answers bad requests with a 4xx",
        ("tests/test_serve_errors.py::test_bad_input_gets_a_400_that_says_what_is_wrong",
         "tests/test_serve_process.py::test_a_body_without_a_declared_length_is_refused_once_it_passes_the_limit"),
        (Sabotage("the body size limit is not enforced while it streams in", "nmt/service/requests.py",
                  "        if size > limit:\n", "        if False:\n"),
         Sabotage("a body that is not UTF-8 is passed on", "nmt/service/requests.py",
                  'text = body.decode("utf-8")', 'text = body.decode("utf-8", errors="replace")'))),
    Row("keys are enforced and the queue is bounded",
        ("tests/test_serve_errors.py::test_without_a_valid_key_a_request_gets_403_and_is_never_decoded",
         "tests/test_serve_errors.py::test_past_the_queue_limit_requests_get_429_with_retry_after"),
        (Sabotage("API keys are not checked", "nmt/service/requests.py", "    if keys and given not in keys:",
                  "    if False:"),
         Sabotage("the queue has no bound", "nmt/service/batcher.py",
                  "        if self.queued_lines + len(lines) > self.max_queued_lines:", "        if False:"))),
    Row("SIGTERM loses no request in flight and exits 0",
        ("tests/test_serve_process.py::test_sigterm_answers_every_request_in_flight_then_exits_0",),
        (Sabotage("SIGTERM cuts the requests in flight", "nmt/service/server.py",
                  "timeout_graceful_shutdown=GRACEFUL_SECONDS", "timeout_graceful_shutdown=0.001"),
         Sabotage("SIGTERM ends the process with the signal, not 0", "nmt/service/server.py",
                  '    signal.signal(signal.SIGTERM, lambda signum, frame: log.info("stopped on SIGTERM"))\n', ""))),
    Row("HTML comes back well-formed, with its elements, its words the translation of its text",
        ("tests/test_serve_html.py::test_generated_html_keeps_its_elements_and_comes_back_well_formed",
         "tests/test_serve_html.py::test_the_text_of_translated_html_is_the_translation_of_its_text_alone",
         "tests/test_serve_html.py::test_an_inline_element_lands_on_the_translation_of_its_words"),
        (Sabotage("an inline element is left open", "nmt/service/markup.py",
                  "node.start + _render(units, p.children, p.begin, p.end) + node.end)",
                  "node.start + _render(units, p.children, p.begin, p.end))"),
         Sabotage("sibling elements may overlap", "nmt/service/markup.py",
                  "begin = max(wanted[i][0], cursor)", "begin = wanted[i][0]"))),
    Row("LibreTranslate's limits refuse with their status and message",
        ("tests/test_serve_libre.py::test_each_limit_refuses_with_its_status_and_message",
         "tests/test_serve_libre.py::test_req_limit_slows_a_client_down_for_a_minute_and_no_one_else"),
        (Sabotage("req_limit is not enforced", "nmt/service/limits.py",
                  "        if window.used >= self.per_minute:", "        if False:"),
         Sabotage("char_limit is not checked", "nmt/service/endpoints.py",
                  "            if c.char_limit != -1 and len(text) > c.char_limit:", "            if False:"))),
    Row("a translated file is removed after its download or its lifetime",
        ("tests/test_serve_libre.py::test_a_translated_file_is_downloaded_once_from_the_url_given",
         ("tests/test_serve_libre.py::test_translated_files_live_in_a_private_directory_under_random_names_until_"
         "their_time_runs_out")),
        (Sabotage("a file stays listed after its download", "nmt/service/files.py",
                  "        del self._stored[token]\n", ""),
         Sabotage("a file outlives its lifetime", "nmt/service/files.py",
                  "if stored.expires <= now]", "if False]"))),
    Row("a suggestion is appended whole or not at all",
        ("tests/test_serve_libre.py::test_each_suggestion_is_one_whole_json_line_even_when_they_come_together",
         "tests/test_serve_libre.py::test_a_line_the_disk_takes_only_in_part_is_cut_back"),
        (Sabotage("a partly written line is left in the file", "nmt/io.py",
                  "            os.ftruncate(fd, size)\n            raise OSError(", "            raise OSError("),)),
    Row("a run stopped by a signal and rerun ends as an uninterrupted one",
        ("tests/test_training.py::test_a_run_interrupted_off_the_validation_steps_and_resumed_ends_as_an_uninterrupted_one",),
        (Sabotage("the signal's checkpoint is validated and counted towards patience", "nmt/training/trainer.py",
                  "                if interrupted:\n                    self.save(is_best=False, resume_point=True)\n"
                  "                else:\n                    last_valid = self._validate_and_save()\n",
                  "                last_valid = self._validate_and_save()\n"),
         Sabotage("the signal's checkpoint is a step_N.pt that is averaged", "nmt/training/trainer.py",
                  "path = last if resume_point else self.checkpoints", "path = self.checkpoints"))),
)


def copy_repository(destination: Path) -> None:
    """The tracked and untracked-but-not-ignored files, as they are in the working tree."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def apply(sabotage: Sabotage, tree: Path) -> None:
    path = tree / sabotage.file
    text = path.read_text()
    if text.count(sabotage.old) != 1:
        sys.exit(f"error: sabotage {sabotage.name!r} no longer applies to {sabotage.file} "
                 f"(its text occurs {text.count(sabotage.old)} times); update it in {__file__}")
    path.write_text(text.replace(sabotage.old, sabotage.new))


def tests_pass(tree: Path, tests: tuple[str, ...]) -> bool:
    env = dict(os.environ, PYTHONPATH=str(tree))
    result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                            cwd=tree, env=env, capture_output=True, timeout=1800)
    return result.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--row", type=int, action="append", help="only these rows (1-based); repeatable")
    parser.add_argument("--list", action="store_true", help="list the rows and sabotages, run nothing")
    args = parser.parse_args()
    rows = [(i, row) for i, row in enumerate(ROWS, start=1) if not args.row or i in args.row]
    print(f"{'row':<4} {'guarantee':<58} {'sabotage':<52} result")
    results: dict[int, list[bool]] = {}
    for number, row in rows:
        for sabotage in row.sabotages:
            caught = None
            if not args.list:
                with tempfile.TemporaryDirectory(prefix="sabotaged-") as scratch:
                    copy_repository(Path(scratch))
                    apply(sabotage, Path(scratch))
                    caught = not tests_pass(Path(scratch), row.tests)
                results.setdefault(number, []).append(caught)
            verdict = "-" if caught is None else "caught" if caught else "MISSED"
            print(f"{number:<4} {row.guarantee[:58]:<58} {sabotage.name[:52]:<52} {verdict}", flush=True)
    for number, row in rows:
        print(f"     row {number} tests: {' '.join(row.tests)}")
    if args.list:
        return
    all_tests = tuple(dict.fromkeys(test for _, row in rows for test in row.tests))
    real_passes = tests_pass(ROOT, all_tests)
    print(f"the same tests on the real code: {'pass' if real_passes else 'FAIL'}")
    caught_rows = sum(all(r) for r in results.values())
    print(json.dumps({"rows": len(results), "caught": caught_rows, "missed": len(results) - caught_rows,
                      "sabotages": sum(len(r) for r in results.values()), "real_code_passes": real_passes}))


if __name__ == "__main__":
    main()
