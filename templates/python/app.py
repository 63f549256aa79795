"""{{name}}: a flowhost flow. `run` gets the input JSON and returns the output JSON;
`flowhost build .` makes dist/{{name}}.wasm."""

from wit_world import WitWorld as _World

import flowhost_sdk as fh


def run(input):
    # Refused with `access-denied` until {{name}}.yaml grants `tables: read: [Execution Log]`.
    log_rows = fh.tables.count("Execution Log")
    return {"input": input, "log_rows": log_rows}


class WitWorld(_World):
    run = fh.flow(run)
