"""{{name}}: a flowhost flow in Python.

Build with `flowhost build .`, install with `flowhost build . --install FLOWS_FOLDER`.
The SDK (flowhost_sdk/) is documented in docs/python.md of the flowhost repository.
"""

from flowhost_sdk import WitWorld, flow, tables  # noqa: F401 (WitWorld is the export)


@flow
def run(input):
    # Reading a table needs a grant in {{name}}.yaml:
    #   grants:
    #     tables:
    #       read: [Execution Log]
    # Without it this call raises AccessDenied, and the run fails with `access-denied: ...`.
    return {"input": input, "log_rows": tables.count("Execution Log")}
