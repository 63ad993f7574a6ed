"""Developer tools run by the Makefile: the coverage report and the mutation run."""
