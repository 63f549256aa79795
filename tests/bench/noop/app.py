"""The Python no-op of flowhost-bench's langs mode: returns its input, through the SDK."""

from flowhost_sdk import WitWorld, flow  # noqa: F401 (WitWorld is the export)


@flow
def run(input):
    return input
