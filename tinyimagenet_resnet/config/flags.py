"""Hydra's command-line flags, as the pre-flight and the entry point read a command line (the one list of them)."""

# flags that print something instead of running jobs (no pre-flight for them)
INFO_FLAGS = frozenset({"--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc"})
MULTIRUN_FLAGS = frozenset({"-m", "--multirun"})
# flags whose value is the next argument
FLAGS_WITH_VALUE = frozenset(
    {
        "--cfg",
        "-c",
        "--package",
        "-p",
        "--config-path",
        "-cp",
        "--config-name",
        "-cn",
        "--config-dir",
        "-cd",
        "--experimental-rerun",
        "--info",
        "-i",
    }
)
