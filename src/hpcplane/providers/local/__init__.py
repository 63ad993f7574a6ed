"""The `local` provider: real Slurm clusters on this machine, one network namespace per node."""
