"""The few exceptions the library raises; only the CLI turns them into exit codes.

Each message is one line that names the file, layer or flag and says what to do.
"""

EXIT_OK = 0
EXIT_QUALITY_GATE = 1
EXIT_BAD_INPUT = 2
EXIT_TOOL_FAILED = 3


class DeployError(Exception):
    exit_code = EXIT_TOOL_FAILED


class UserInputError(DeployError):
    """The user gave something wrong: a flag, a config key, a model or data file."""

    exit_code = EXIT_BAD_INPUT


class ToolError(DeployError):
    """A converter, runtime or training step failed on input that looked valid."""

    exit_code = EXIT_TOOL_FAILED


class QualityGateError(DeployError):
    """The build finished, but an artifact lost more accuracy than allowed."""

    exit_code = EXIT_QUALITY_GATE
