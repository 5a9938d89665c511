"""``python -m eventkit.sweep <sweep dir>``: rebuild a sweep's sweep.jsonl and summary.md from its
jobs' run directories (e.g. after SLURM jobs end). The command's module; the work is in
:mod:`eventkit.running.sweep`."""

from eventkit.running.sweep import main

if __name__ == "__main__":
    raise SystemExit(main())
